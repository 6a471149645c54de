"""clusternb's JupyterLab extension in a real JupyterLab, in headless Debian chromium, over a real cluster.

A real redis-server, two real ``clusternb agent`` processes (alpha and beta) and a real ``jupyter lab`` whose
server extension reads that Redis. The built extension (``make labextension``) is what Lab loads. The tests
look at what a person sees: the status bar, the sidebar, the dashboard tab, the notifications.

The agents' alert rules are the built-in ones with every rule but ``node_offline`` switched off (this host's
own load must not raise alerts) and ``node_offline`` as a warning, so a killed agent makes the cluster
"degraded" rather than "critical". Screenshots go to tests/artifacts/, and to docs/ with
``CLUSTERNB_UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from clusternb.alerting.rules import DEFAULT_RULES
from clusternb.config import load_config
from clusternb.queries import Client
from clusternb.state.redis import RedisStateStore
from tests.browser import ARGS, CHROMIUM
from tests.helpers import make_snapshot
from tests.lab_process import TOKEN, Agents, Lab
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
INTERVAL = 0.5
RULES = [{"name": r.name, "enabled": False} for r in DEFAULT_RULES if r.name != "node_offline"]
RULES.append({"name": "node_offline", "severity": "warning"})
XSS_NODE = "<img src=x onerror=window.__xss=1>"
STATUS = ".clusternb-StatusItem"


@pytest.fixture
def cluster(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[Agents, RedisServer]]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (never `playwright install`)")
    if not (REPO / "clusternb" / "labextension" / "package.json").exists():
        pytest.fail("the JupyterLab extension is not built: run `make labextension` (make test does)")
    agents = Agents(redis_server.url, tmp_path, INTERVAL, {"CLUSTERNB_ALERT_RULES": orjson.dumps(RULES).decode()})
    for name in ("alpha", "beta"):
        agents.start(name)
    try:
        yield agents, redis_server
    finally:
        agents.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def open_lab(context: Any, lab: Lab) -> Any:
    """A Lab page with clusternb loaded; counts its WebSockets to clusternb in ``page.clusternb_sockets``."""
    page = context.new_page()
    page.clusternb_sockets = []
    page.on("websocket", lambda ws: "clusternb/api/ws" in ws.url and page.clusternb_sockets.append(ws.url))
    page.goto(lab.url())
    page.wait_for_function("() => window.jupyterapp !== undefined && window.clusternb !== undefined", timeout=60_000)
    page.wait_for_selector(STATUS, timeout=60_000)
    return page


def status_text(page: Any) -> str:
    return str(page.locator(STATUS).inner_text())


def toasts_naming(page: Any, node: str) -> int:
    return int(page.locator(".jp-toast-message", has_text=f"{node} · node_offline").count())


def shot(target: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    target.screenshot(path=str(path))
    if os.environ.get("CLUSTERNB_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, REPO / "docs" / name)


def open_sidebar(page: Any) -> None:
    page.evaluate("() => window.jupyterapp.shell.activateById('clusternb-sidebar')")
    page.wait_for_selector("#clusternb-sidebar .clusternb-node", timeout=30_000)


def start_session(lab: Lab, path: str) -> None:
    """A notebook session with a python3 kernel, through Jupyter's REST API (what opening a notebook does)."""
    body = orjson.dumps({"path": path, "type": "notebook", "name": "", "kernel": {"name": "python3"}})
    url = f"http://127.0.0.1:{lab.port}{lab.base_url}api/sessions"
    headers = {"Authorization": f"token {TOKEN}", "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, body, headers, method="POST"), timeout=60) as response:
        assert response.status == 201


def test_status_notifications_acknowledge_and_recovery(
    cluster: tuple[Agents, RedisServer], browser: Any, tmp_path: Path
) -> None:
    agents, redis_server = cluster
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    with Lab(tmp_path, redis_server.url) as lab:
        first = open_lab(context, lab)
        first.wait_for_function(f"() => document.querySelector('{STATUS}').innerText.includes('2 online of 2')")
        assert "healthy" in status_text(first)
        second = open_lab(context, lab)  # a second browser tab of the same Lab: one notification in all
        second.wait_for_function(f"() => document.querySelector('{STATUS}').innerText.includes('2 online of 2')")
        open_sidebar(first)
        shot(first.locator(STATUS), "lab-statusbar.png")

        agents.kill("beta")  # SIGKILL: no goodbye; alpha's liveness check declares beta offline
        for page in (first, second):
            page.wait_for_function(
                f"() => document.querySelector('{STATUS}').innerText.includes('degraded')", timeout=30_000
            )
        assert "1 online of 2" in status_text(first)
        first.wait_for_selector("#clusternb-sidebar .clusternb-alert >> text=beta", timeout=30_000)
        deadline = time.monotonic() + 30
        while toasts_naming(first, "beta") + toasts_naming(second, "beta") == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # room for a wrong second notification to show up
        counts = [toasts_naming(first, "beta"), toasts_naming(second, "beta")]
        assert sum(counts) == 1, counts
        notified = first if counts[0] else second
        toast = notified.locator(".Toastify__toast", has_text="beta · node_offline")
        assert "Open dashboard" in toast.inner_text() and "Acknowledge" in toast.inner_text()
        shot(toast, "lab-notification.png")
        shot(first.locator("#clusternb-sidebar"), "lab-sidebar.png")

        # Acknowledge from the sidebar; the server records it in Redis, where clusternb.alerts() reads it.
        first.locator("#clusternb-sidebar .clusternb-alert", has_text="beta").locator("button.clusternb-ack").click()
        with Client(load_config(redis_url=redis_server.url, interval=INTERVAL), sample_local=False) as client:
            deadline = time.monotonic() + 30
            acked = False
            while not acked and time.monotonic() < deadline:
                alerts = client.alerts()
                acked = bool(alerts[(alerts["node"] == "beta")]["acknowledged"].any())
                time.sleep(0.2)
            assert acked, client.alerts().to_dict("records")
        first.wait_for_selector("#clusternb-sidebar .clusternb-acked", timeout=30_000)

        # A reconnect must not repeat the notification: drop the socket, let it come back.
        notified.evaluate("() => window.clusternb.connection._ws.close()")
        notified.wait_for_function("() => window.clusternb.connection.state === 'live'", timeout=30_000)
        time.sleep(1.5)
        assert toasts_naming(first, "beta") + toasts_naming(second, "beta") == 1

        agents.start("beta")  # back: the alert resolves and the notification says so
        first.wait_for_function(
            f"() => document.querySelector('{STATUS}').innerText.includes('2 online of 2')", timeout=30_000
        )
        notified.wait_for_selector(".jp-toast-message >> text=resolved", timeout=30_000)
        assert "healthy" in status_text(first)
        # One WebSocket per browser tab (the notified one reconnected once, above).
        assert len(notified.clusternb_sockets) == 2
        assert len((second if notified is first else first).clusternb_sockets) == 1
    context.close()


def test_dashboard_tab_from_the_palette_and_a_hostile_node_name(
    cluster: tuple[Agents, RedisServer], browser: Any, tmp_path: Path
) -> None:
    _agents, redis_server = cluster
    # A node with a hostile name that reports once and falls silent: it is listed, goes offline and raises a
    # node_offline alert, so its name reaches the sidebar, the dashboard and a notification.
    store = RedisStateStore(redis_server.url)
    store.put(make_snapshot(XSS_NODE, time=time.time(), interval_s=INTERVAL))
    store.close()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    with Lab(tmp_path, redis_server.url) as lab:
        page = open_lab(context, lab)
        page.wait_for_function(f"() => document.querySelector('{STATUS}').innerText.includes('2 online of 3')")
        open_sidebar(page)
        names = page.locator("#clusternb-sidebar .clusternb-node button.clusternb-link").all_inner_texts()
        assert XSS_NODE in names, names
        page.wait_for_selector(f".jp-toast-message >> text={XSS_NODE} · node_offline", timeout=30_000)
        assert XSS_NODE in page.locator("#clusternb-sidebar .clusternb-alert-node").all_inner_texts()

        # The sidebar's kernels: this server's, by notebook path; a hostile path is text too.
        for path in ("k.ipynb", f"{XSS_NODE}.ipynb"):
            start_session(lab, path)
        page.wait_for_function(
            "() => document.querySelectorAll('#clusternb-sidebar .clusternb-kernel').length === 2", timeout=30_000
        )
        paths = page.locator("#clusternb-sidebar .clusternb-kernel-path").all_inner_texts()
        assert sorted(paths) == sorted(["k.ipynb", f"{XSS_NODE}.ipynb"]), paths
        assert page.locator("#clusternb-sidebar .clusternb-kernels img").count() == 0
        row = page.locator("#clusternb-sidebar .clusternb-kernel", has_text="k.ipynb")
        _path, node, state, mem, cpu = row.locator("td").all_inner_texts()
        assert node and state in {"starting", "idle", "busy"}, (node, state)
        assert re.fullmatch(r"\d+(\.\d)? (B|KiB|MiB|GiB)", mem) and cpu.endswith(" %"), (mem, cpu)  # IEC

        # The command palette, as a person uses it (opened by its command: a key press can land before Lab
        # has focus on a loaded machine).
        # The modal palette closes when it loses focus, and its command toggles it: open it only while it is
        # hidden, and try again (a few times) when a loaded machine closed it before the command was chosen.
        palette = page.locator(".lm-CommandPalette-input")
        active = page.locator(".lm-CommandPalette-item.lm-mod-active", has_text="clusternb: Open dashboard")
        for attempt in range(5):
            if not palette.is_visible():
                page.evaluate("() => window.jupyterapp.commands.execute('apputils:activate-command-palette')")
            try:
                palette.fill("clusternb: Open dashboard", timeout=8_000)
                active.wait_for(timeout=8_000)
                palette.press("Enter", timeout=8_000)
                break
            except PlaywrightTimeout:
                if attempt == 4:
                    raise
        frame_element = page.wait_for_selector(".clusternb-Dashboard iframe", timeout=30_000)
        frame = frame_element.content_frame()
        frame.wait_for_selector("#workers tbody tr[data-node='alpha']", timeout=30_000)
        assert frame.locator("#conn").inner_text() == "live"
        assert XSS_NODE in frame.locator("#workers tbody").inner_text()
        time.sleep(1)
        shot(page, "lab-dashboard-tab.png")
        assert len(page.clusternb_sockets) == 1  # the tab used the page's connection, not its own
        assert frame.evaluate("() => document.documentElement.dataset.theme") == "light"
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'", timeout=30_000)
        assert page.evaluate("() => window.__xss") is None
        assert frame.evaluate("() => window.__xss") is None

        # The notification's own Acknowledge action: the id (rule:node, with the hostile name) survives the URL.
        toast = page.locator(".Toastify__toast", has_text=f"{XSS_NODE} · node_offline")
        toast.get_by_role("button", name="Acknowledge").click()
        page.wait_for_selector(".jp-toast-message >> text=acknowledged", timeout=30_000)
        with Client(load_config(redis_url=redis_server.url, interval=INTERVAL), sample_local=False) as client:
            alerts = client.alerts()
            assert bool(alerts[alerts["node"] == XSS_NODE]["acknowledged"].all()), alerts.to_dict("records")

        # A node's link opens its charts: the dashboard's filter is that node.
        page.locator("#clusternb-sidebar button.clusternb-link", has_text="beta").click()
        frame.wait_for_function("() => document.getElementById('filter').value === 'beta'", timeout=30_000)
    context.close()


def test_under_a_jupyterhub_style_base_url(cluster: tuple[Agents, RedisServer], browser: Any, tmp_path: Path) -> None:
    _agents, redis_server = cluster
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    with Lab(tmp_path, redis_server.url, base_url="/user/alice/") as lab:
        page = open_lab(context, lab)
        page.wait_for_function(f"() => document.querySelector('{STATUS}').innerText.includes('2 online of 2')")
        assert page.clusternb_sockets and all("/user/alice/clusternb/api/ws" in u for u in page.clusternb_sockets)
        page.locator(STATUS).click()  # the status bar item opens the dashboard tab
        frame = page.wait_for_selector(".clusternb-Dashboard iframe", timeout=30_000).content_frame()
        frame.wait_for_selector("#workers tbody tr[data-node='beta']", timeout=30_000)
        assert "/user/alice/clusternb/" in frame.url
    context.close()


def test_without_the_server_extension_one_line_and_no_loop(browser: Any, tmp_path: Path) -> None:
    """The Lab extension installed, the server extension disabled: one console line, no WebSocket, no errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    with Lab(tmp_path, "redis://127.0.0.1:1/0", extension=False) as lab:
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url) if "clusternb" in ws.url else None)
        page.goto(lab.url())
        page.wait_for_function("() => window.clusternb?.connection.state === 'disabled'", timeout=60_000)
        time.sleep(3)  # a reconnect loop would show up here
        mine = [line for line in console if "clusternb" in line]
        assert len(mine) == 1 and "server extension is not enabled" in mine[0], mine
        assert sockets == []
        assert "not enabled" in page.locator(STATUS).get_attribute("title")
    context.close()


def test_settings_limit_notifications_to_critical_and_choose_the_status_fields(
    cluster: tuple[Agents, RedisServer], browser: Any, tmp_path: Path
) -> None:
    agents, redis_server = cluster
    settings = {"notifications": "critical", "statusBarFields": ["nodes", "alerts"]}
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    with Lab(tmp_path, redis_server.url, settings=settings) as lab:
        page = open_lab(context, lab)
        page.wait_for_function(f"() => document.querySelector('{STATUS}').innerText === '2 online of 2 · 0 alerts'")
        open_sidebar(page)
        agents.kill("beta")  # node_offline is a warning here: below the "critical" setting
        page.wait_for_selector("#clusternb-sidebar .clusternb-alert >> text=beta", timeout=30_000)
        page.wait_for_function(f"() => document.querySelector('{STATUS}').innerText === '1 online of 2 · 1 alerts'")
        time.sleep(2)  # room for a wrong notification to show up
        assert toasts_naming(page, "beta") == 0
    context.close()
