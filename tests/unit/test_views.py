"""The panel's HTML: a node's name is escaped text, numbers follow clusternb.units, counts agree with nouns."""

from __future__ import annotations

import re

import pandas as pd

from clusternb import frames
from clusternb.widgets import views
from tests.helpers import make_snapshot

T0 = 1_700_000_000.0
PHISHING = '<a href="https://evil.example/login">Session expired: click to log in</a>'
ESCAPED = "&lt;a href=&quot;https://evil.example/login&quot;&gt;Session expired: click to log in&lt;/a&gt;"


def workers(*names: str, **values: float) -> pd.DataFrame:
    snaps = [make_snapshot(name, time=T0, **values) for name in names]
    return frames.workers_frame(snaps, T0 + 1, lambda interval: (3600.0, 7200.0))


def test_a_node_named_like_a_link_is_text_in_the_workers_table() -> None:
    table = views.workers_html(workers(PHISHING, "plain"))
    assert ESCAPED in table
    assert "<a" not in table and 'evil.example/login"' not in table


def test_the_workers_table_writes_units_the_one_way() -> None:
    table = views.workers_html(
        workers("n1", mem_total_bytes=25_232_932_864, mem_used_bytes=2_254_857_830, net_rx_bps=1_234_567.0)
    )
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table)
    assert "2.1 GiB" in cells and "1.2 MB/s" in cells and "8.9 %" in cells
    assert "4.0 kB/s" in cells  # make_snapshot's net_tx_bps, 4000 B/s: SI, not 3.9 KiB/s


def test_counts_agree_with_their_noun_in_the_header() -> None:
    one = workers("n1")
    status = frames.status_frame(one, T0 + 1, frames.empty_alerts_frame())
    header = views.header_html(status, "memory")
    assert "<b>1</b> node ·" in header and "1 nodes" not in header
    assert "of 8 cores" in header and "of 16.0 GiB" in header
    many = workers(*(f"n{i:03d}" for i in range(views.MAX_ROWS + 1)))
    assert "… 1 more node (see" in views.workers_html(many)
    assert "<b>201</b> nodes" in views.header_html(frames.status_frame(many, T0 + 1, frames.empty_alerts_frame()), "x")


def test_a_table_drawn_again_changes_exactly_the_rows_whose_values_changed() -> None:
    """Rows are remembered by what they show: a warm table equals a cold one, row for row, missing values too."""
    before = workers("a", "b", "c", cpu_percent=10.0)
    changed = workers("a", "b", "c", cpu_percent=10.0)
    changed.loc["b", "cpu_percent"] = 55.0
    changed.loc["c", "gpu_util_percent"] = float("nan")
    changed.loc["c", "mem_used_bytes"] = pd.NA
    views.workers_html(before)  # warm
    rows_before = re.findall(r"<tr class=\"clusternb-worker\">.*?</tr>", views.workers_html(before))
    warm = views.workers_html(changed)
    views._ROWS.clear()
    assert views.workers_html(changed) == warm  # cold: the same HTML
    rows_after = re.findall(r"<tr class=\"clusternb-worker\">.*?</tr>", warm)
    assert [x == y for x, y in zip(rows_before, rows_after, strict=True)] == [True, False, False]
    assert "55.0 %" in rows_after[1] and "—" in rows_after[2]
