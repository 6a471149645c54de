"""clusternb's JupyterLab extension in Notebook 7 (its shell has no status bar and no main-area tabs): it loads,
raises the alert notification, and opens the dashboard as a browser tab; over a real Redis and real agents."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.browser import ARGS, CHROMIUM
from tests.e2e.test_lab_frontend import INTERVAL, RULES
from tests.lab_process import Agents, Lab
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.redis]


@pytest.fixture
def page(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[Any, Agents]]:
    from playwright.sync_api import sync_playwright

    agents = Agents(redis_server.url, tmp_path, INTERVAL, {"CLUSTERNB_ALERT_RULES": orjson.dumps(RULES).decode()})
    for name in ("alpha", "beta"):
        agents.start(name)
    try:
        with Lab(tmp_path, redis_server.url, app="notebook") as nb, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(nb.url())
            yield page, agents
            browser.close()
    finally:
        agents.close()


def test_notification_and_dashboard_in_notebook7(page: tuple[Any, Agents]) -> None:
    tab, agents = page
    errors: list[str] = []

    def on_error(exc: Any) -> None:  # Notebook 7 raises one of its own at start ("reading 'schema'"): not ours
        if "clusternb" in str(exc.stack):
            errors.append(str(exc))

    tab.on("pageerror", on_error)
    tab.wait_for_function("() => window.clusternb?.connection.state === 'live'", timeout=60_000)
    tab.wait_for_function("() => window.clusternb.connection.latest('alerts') !== undefined", timeout=30_000)
    agents.kill("beta")
    tab.wait_for_selector(".jp-toast-message >> text=beta · node_offline", timeout=30_000)
    time.sleep(1)
    assert tab.locator(".jp-toast-message", has_text="beta · node_offline").count() == 1
    with tab.expect_popup() as popup:
        tab.evaluate("() => window.jupyterapp.commands.execute('clusternb:open-dashboard')")
    dashboard = popup.value
    dashboard.wait_for_selector("#workers tbody tr[data-node='alpha']", timeout=30_000)
    assert errors == []
