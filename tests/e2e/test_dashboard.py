"""The dashboard in a real browser: Debian's chromium driven by the playwright pip package.

A real ``jupyter server`` subprocess serves 12 synthetic nodes with 15 minutes of history; one node's CPU
changes every 2 s inside the server. The test opens ``/clusternb/?token=...``, waits for the workers table
and the three plotly charts, waits (with a deadline) for the changing CPU value to change on the page, then
saves a screenshot to ``tests/artifacts/dashboard.png``; with ``CLUSTERNB_UPDATE_SCREENSHOTS=1`` it also
copies it to ``docs/dashboard.png`` (the README's picture), so a normal test run never dirties the tree.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from clusternb import tables
from tests.browser import chromium_page
from tests.server_process import REPO, JupyterServer

pytestmark = [pytest.mark.server, pytest.mark.browser]


@pytest.fixture(scope="module")
def server() -> Iterator[JupyterServer]:
    extra = "c.ClusterNBApp.push_interval = 0.5\nc.ClusterNBApp.fresh_every = 1.0\n"
    with JupyterServer(extra, nodes=12, history_s=900.0, step_s=10.0, change_every=2.0) as running:
        yield running


def test_dashboard_renders_and_updates_live(server: JupyterServer) -> None:
    with chromium_page(1440, 1100) as (page, errors):
        page.goto(server.url("clusternb/", token=True))
        page.wait_for_selector("#workers tbody tr[data-node='node-0000']", timeout=30_000)
        assert page.locator("#workers tbody tr").count() == 12
        for chart in ("chart-cpu", "chart-mem", "chart-net"):
            page.wait_for_selector(f"#{chart} .main-svg .scatterlayer .trace", timeout=30_000)
        assert page.locator("#conn").inner_text() == "live"
        cell = page.locator("#workers tbody tr[data-node='node-0000'] td.cpu")
        first = cell.inner_text()
        deadline = time.monotonic() + 30
        while cell.inner_text() == first:
            assert time.monotonic() < deadline, "the changing CPU value never changed on the page"
            page.wait_for_timeout(200)
        assert "ago" in page.locator(".age[data-topic='workers']").inner_text()
        # The alerts never change here; their card must still say when the server last checked them (it said
        # "as of 3 min ago" when only a change refreshed it).
        page.wait_for_timeout(6000)
        alerts_age = page.locator(".age[data-topic='alerts']").inner_text()
        assert alerts_age in {f"as of {n} s ago" for n in range(4)}, alerts_age
        page.wait_for_timeout(800)  # let the highlight animation of the change finish before the picture
        out = REPO / "tests" / "artifacts" / "dashboard.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
    assert errors == []
    if os.environ.get("CLUSTERNB_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(out, REPO / "docs" / "dashboard.png")


def test_the_workers_table_follows_the_field_catalogue(server: JupyterServer) -> None:
    """Every column heading after Node, and every cell's class, comes from the catalogue's dashboard columns."""
    spec = tables.dashboard_columns()
    with chromium_page(1440, 900) as (page, errors):
        page.goto(server.url("clusternb/", token=True))
        page.wait_for_selector("#workers tbody tr[data-node='node-0000']", timeout=30_000)
        heads = page.evaluate(
            "[...document.querySelectorAll('#workers thead th')].map((h) => [h.dataset.field || null, h.textContent])"
        )
        assert heads == [[None, "Node"], *([c["name"], c["heading"]] for c in spec)]
        classes = page.evaluate(
            "[...document.querySelectorAll(\"#workers tbody tr[data-node='node-0000'] td\")].map((td) => td.className)"
        )
        assert classes[0] == "" and [c.split()[-1] for c in classes[1:]] == [c["class"] for c in spec]
    assert errors == []
