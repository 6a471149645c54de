"""Every text from a node is shown as text, and one node reads the same on the CLI, the panel and the dashboard.

Real parts throughout: a redis-server the nodes are published to (as agents would), a ``jupyter server``
subprocess reading it, Debian's Chromium on the dashboard, the ``clusternb`` command as a subprocess, and a
panel rendered by a real :class:`clusternb.queries.Client` on the same Redis. Each test has its own Redis
database, so the cluster totals the dashboard's cards show are those of the test's own nodes.
"""

from __future__ import annotations

import html
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import ipywidgets
import pytest

from clusternb import units
from clusternb.config import load_config
from clusternb.kernel_usage.board import RedisBoard
from clusternb.kernel_usage.measure import current_user
from clusternb.queries import Client
from clusternb.redisio.link import RedisLink
from clusternb.rejects import Rejections
from clusternb.state.redis import RedisStateStore
from clusternb.widgets import panel as panels
from tests.browser import chromium_page
from tests.helpers import make_kernel, make_report, make_snapshot
from tests.redis_server import RedisServer
from tests.server_process import JupyterServer

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.redis]

PHISHING = '<a href="https://evil.example/login">Session expired: click to log in</a>'


def db_url(redis: RedisServer, db: int) -> str:
    return redis.url.rsplit("/", 1)[0] + f"/{db}"


def publish(url: str, nodes: dict[str, dict[str, Any]]) -> None:
    """Three samples per node over the last 20 s: lines in the charts, and one latest snapshot per node."""
    store = RedisStateStore(url)
    now = time.time()
    for t in (now - 20, now - 10, now):
        for name, values in nodes.items():
            store.put(make_snapshot(name, time=t, interval_s=3600.0, **values))
    store.close()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def dashboard(url: str) -> JupyterServer:
    extra = (
        "c.ClusterNBApp.state_store = None\n"
        "c.ClusterNBApp.push_interval = 0.5\n"
        f"c.ClusterNB.redis_url = {url!r}\n"
        "c.ClusterNB.interval = 1.0\n"
    )
    return JupyterServer(extra)


def test_a_node_named_like_a_link_is_text_in_every_legend_cell_and_attribute(redis: RedisServer) -> None:
    url = db_url(redis, 1)
    publish(url, {PHISHING: {"cpu_percent": 50.0}, "plain-node": {}})
    # A kernel of the dashboard's own user (so its path is shown) on the hostile node, in a notebook named like it.
    kernel = make_kernel("k-evil", user=current_user(), path=PHISHING, kernel_name=PHISHING)
    board = RedisBoard(RedisLink(url), Rejections(), 3600.0)
    board.put(make_report(PHISHING, time=time.time() + 30, kernels=(kernel,)))
    with dashboard(url) as server, chromium_page(1440, 1000) as (page, errors):
        page.goto(server.url("clusternb/", token=True))
        page.wait_for_selector("#workers tbody tr[data-node='plain-node']", timeout=30_000)
        page.wait_for_function("document.querySelector('#kernels tbody').textContent.includes('Session expired')")
        kernel_cells = page.evaluate("[...document.querySelectorAll('#kernels tbody td')].map(c => c.textContent)")
        assert kernel_cells.count(PHISHING) >= 2  # node and path (and kernel name where the table shows it)
        assert page.evaluate("document.querySelectorAll('#kernels a, #kernels img, #kernels [href]').length") == 0
        for chart in ("chart-cpu", "chart-mem"):
            page.wait_for_selector(f"#{chart} .legend .traces", timeout=30_000)
            legend = page.locator(f"#{chart} .legend").evaluate("el => el.textContent")
            assert PHISHING in legend, legend  # the literal characters, <a href= and all
        # The name is a cell's text; nothing on the page was built from it: no link, no element inside a legend.
        assert page.evaluate("document.querySelectorAll('a[href*=evil]').length") == 0
        assert page.evaluate("[...document.querySelectorAll('a')].map(a => a.textContent)") == [
            "REST API",
            "Prometheus",
        ]
        cells = page.evaluate(
            "[...document.querySelectorAll('#workers tbody tr > td:first-child')].map(c => c.textContent)"
        )
        assert sorted(cells) == sorted([PHISHING, "plain-node"])
        assert page.evaluate("document.querySelectorAll('#workers tbody td:first-child *').length") == 0
        assert page.evaluate("document.querySelectorAll('.legend a, .legend [href]').length") == 0
        # Hover labels name the trace too: show one for the hostile node's first point (plotly's own Fx.hover).
        page.evaluate(
            "(name) => { const gd = document.getElementById('chart-cpu');"
            " const i = gd.data.findIndex((t) => t.name.includes('evil'));"
            " Plotly.Fx.hover(gd, [{curveNumber: i, pointNumber: 0}]); }",
            PHISHING,
        )
        page.wait_for_selector("#chart-cpu .hoverlayer .hovertext", timeout=10_000)
        assert "<a href" in page.locator("#chart-cpu .hoverlayer").text_content()
        assert page.evaluate("document.querySelectorAll('.hoverlayer a, .hoverlayer [href]').length") == 0
        # The filter box matches the name as text.
        page.fill("#filter", "<a href")
        page.wait_for_function("document.querySelectorAll('#workers tbody tr').length === 1")
        assert page.locator("#workers tbody td").first.text_content() == PHISHING
    assert errors == []


# One node with known values, and what every face must write for them (clusternb.units' convention).
UNITS_NODE = "units-node"
VALUES = {
    "mem_total_bytes": 25_232_932_864,
    "mem_used_bytes": 2_254_857_830,
    "net_rx_bps": 1_234_567.0,
    "net_tx_bps": 1_000_000.0,
}
EXPECTED = {"23.5 GiB", "2.1 GiB", "1.2 MB/s", "1.0 MB/s", "8.9 %"}


def text_of(markup: str) -> str:
    """What a reader sees in HTML: tags dropped, entities decoded."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup)))


def test_one_node_reads_the_same_on_cli_panel_and_dashboard(redis: RedisServer) -> None:
    assert {
        units.human_bytes(VALUES["mem_total_bytes"]),
        units.human_bytes(VALUES["mem_used_bytes"]),
        units.human_rate(VALUES["net_rx_bps"]),
        units.human_rate(VALUES["net_tx_bps"]),
        units.percent(100 * VALUES["mem_used_bytes"] / VALUES["mem_total_bytes"]),
    } == EXPECTED
    url = db_url(redis, 2)
    publish(url, {UNITS_NODE: VALUES})

    # The CLI.
    run = [sys.executable, "-m", "clusternb.cli"]
    workers = subprocess.run([*run, "workers", "--redis", url], capture_output=True, text=True, timeout=60)
    status = subprocess.run([*run, "status", "--redis", url], capture_output=True, text=True, timeout=60)
    assert workers.returncode == 0 and status.returncode == 0, workers.stderr + status.stderr
    cli = workers.stdout + status.stdout
    assert "nodes        1 total" in status.stdout
    # Every time the CLI prints has a date and a zone: the metrics table's time column too.
    metrics = subprocess.run(
        [*run, "metrics", "--redis", url, "--since", "5m"], capture_output=True, text=True, timeout=60
    )
    rows = [line for line in metrics.stdout.splitlines() if UNITS_NODE in line]
    assert len(rows) == 3 and all(re.match(r"\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC ", r) for r in rows), metrics.stdout

    # The panel, as the widgets hold it (what JupyterLab shows).
    with Client(load_config(redis_url=url, stale_after=3600, offline_after=7200), sample_local=False) as client:
        shown = panels.panel(client=client)
        try:
            panel_html = "".join(s.widget.value for s in shown.sections if isinstance(s.view, ipywidgets.HTML))
        finally:
            shown.close()
    panel_text = text_of(panel_html)
    assert UNITS_NODE in panel_text and "1 node · 1 online" in panel_text  # "1 node", not "1 nodes"

    # The dashboard, in Chromium.
    with dashboard(url) as server, chromium_page(1440, 1000) as (page, errors):
        page.goto(server.url("clusternb/", token=True))
        row = page.locator(f"#workers tbody tr[data-node='{UNITS_NODE}']")
        row.wait_for(timeout=30_000)
        page.wait_for_function("document.getElementById('c-mem-sub').textContent.includes('of')")
        dashboard_text = " · ".join(
            [row.inner_text(), page.locator("#c-mem-sub").inner_text(), page.locator("#c-mem").inner_text()]
        )
    assert errors == []

    for face, text in (("CLI", cli), ("panel", panel_text), ("dashboard", dashboard_text)):
        missing = {s for s in EXPECTED if s not in text}
        assert not missing, f"the {face} lacks {missing}: {text}"
        for wrong in ("GB", "KB", "MiB/s", "KiB/s", "bytes/s"):
            assert not re.search(rf"\d {re.escape(wrong)}\b", text), f"the {face} says {wrong}: {text}"


def test_the_dashboard_formatters_mirror_clusternb_units(redis: RedisServer) -> None:
    """units.js against units.py, value for value, at the boundaries and at 400 values across every magnitude."""
    rng = random.Random(13)
    values: list[float] = [0, 1, 999, 999.4, 999.5, 1000, 1023, 1024, 1280, 1536, 1_048_575, 1_048_576]
    values += [25_232_932_864, 1_234_567, 999_949, 999_950, 2**60, 0.125, 12.25, 99.95, 2.5, -2.5, 0.05, 1e-7]
    values += [round(10 ** rng.uniform(-3, 18), rng.randint(0, 4)) for _ in range(400)]
    times = ["2023-11-14T22:13:20.000Z", "2024-02-29T23:59:59.999Z", "1999-12-31T00:00:00Z", None, "banana"]
    python = {
        "bytes": [units.human_bytes(v) for v in values],
        "rate": [units.human_rate(v) for v in values],
        "percent": [units.percent(v) for v in values],
        "number": [units.number(v) for v in values],
        "number0": [units.number(v, 0) for v in values],
        "missing": [units.human_bytes(None), units.human_rate(None), units.percent(None), units.number(None)],
        "count": [units.count(n, "node") for n in (0, 1, 2)] + [units.count(n, "entry", "entries") for n in (1, 5)],
        "clock": [units.clock(t) if t != "banana" else units.DASH for t in times],
    }
    with dashboard(db_url(redis, 3)) as server, chromium_page(800, 600) as (page, errors):
        page.goto(server.url("clusternb/", token=True))
        page.wait_for_function("window.clusternbUnits !== undefined")
        browser = page.evaluate(
            """([values, times]) => { const U = window.clusternbUnits; return {
                bytes: values.map(U.humanBytes), rate: values.map(U.humanRate), percent: values.map(U.percent),
                number: values.map((v) => U.number(v)), number0: values.map((v) => U.number(v, 0)),
                missing: [U.humanBytes(null), U.humanRate(null), U.percent(null), U.number(null)],
                count: [0, 1, 2].map((n) => U.count(n, "node"))
                  .concat([1, 5].map((n) => U.count(n, "entry", "entries"))),
                clock: times.map(U.clock) }; }""",
            [values, times],
        )
    assert errors == []
    for key, expected in python.items():
        mismatches = [(v, p, b) for v, p, b in zip(values, expected, browser[key], strict=False) if p != b]
        assert browser[key] == expected, f"{key}: (value, python, browser) {mismatches[:5]}"
