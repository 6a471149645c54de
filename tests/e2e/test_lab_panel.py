"""The live panel in a real JupyterLab, in headless Debian chromium: it renders, then updates by itself.

A temporary JupyterLab (own config, settings and workspace dirs; the news pop-up off through overrides.json)
serves a notebook that shows ``clusternb.panel()`` and, in a second cell, starts feeding five extra nodes into
the client's state store. The test runs all cells, waits for the table and the three plotly charts, then waits
for changes that only the poller thread can bring: new worker rows and a new "as of" time. A screenshot goes
to tests/artifacts/panel.png, and with ``CLUSTERNB_UPDATE_SCREENSHOTS=1`` also to docs/panel.png (the README's
picture), so a normal run never dirties the tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, stop_process

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "tests" / "artifacts" / "panel.png"
TOKEN = "clusternb-e2e-token"

PANEL_CELL = "import clusternb\n\nclusternb.connect(interval=0.5)\np = clusternb.panel(interval=1)\np"
FEEDER = '''import math, threading, time
import msgspec

client = clusternb.get_client()


def feed(seconds=120):
    """Five more nodes, derived from this host's latest sample, with made-up load."""
    end = time.time() + seconds
    while time.time() < end:
        base = max(client.store.latest(), key=lambda s: s.time)
        for i in range(1, 6):
            phase = time.time() / 6 + i
            client.store.put(msgspec.structs.replace(
                base, node=f"worker-{i}", host=f"worker-{i}", time=time.time(),
                cpu_percent=round(50 + 40 * math.sin(phase), 1),
                mem_used_bytes=int(base.mem_total_bytes * (0.3 + 0.08 * i + 0.05 * math.cos(phase))),
                net_rx_bps=2e6 * (1 + math.sin(phase)) * i, net_tx_bps=1e6 * i,
            ))
        time.sleep(0.5)


threading.Thread(target=feed, daemon=True).start()'''


def write_notebook(path: Path) -> None:
    cells: list[dict[str, object]] = [
        {"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "execution_count": None, "outputs": [], "source": src}
        for i, src in enumerate((PANEL_CELL, FEEDER))
    ]
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb: dict[str, object] = {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (never `playwright install`)")
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / "panel.ipynb")
    app_settings = tmp_path / "app-settings"
    app_settings.mkdir()
    overrides = {
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    (app_settings / "overrides.json").write_text(json.dumps(overrides))
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    cmd = [
        jupyter, "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.token={TOKEN}",
        f"--ServerApp.root_dir={root}", f"--LabApp.app_settings_dir={app_settings}", "--allow-root",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run commands
    ]  # fmt: skip
    log = (tmp_path / "lab.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.3)
        yield url
    finally:
        stop_process(proc, timeout=15)
        log.close()


def test_panel_renders_and_updates_live(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{lab}/lab/tree/panel.ipynb?token={TOKEN}")
            page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            # The kernel must be idle before run-all, or the first cell can be dropped while it starts.
            page.wait_for_function(
                "() => window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'",
                timeout=60_000,
            )
            page.evaluate("() => window.jupyterapp.commands.execute('runmenu:run-all')")

            panel = page.locator(".clusternb-panel")
            panel.wait_for(timeout=60_000)
            page.wait_for_selector(".clusternb-panel .clusternb-workers tr.clusternb-worker", timeout=60_000)
            page.wait_for_function(
                "() => document.querySelectorAll('.clusternb-panel .js-plotly-plot .scatterlayer .trace').length >= 3",
                timeout=60_000,
            )
            first = panel.inner_text()
            as_of = re.search(r"as of (\S+ \S+)", first)
            assert as_of, first
            # Changes only the poller thread can bring: the feeder's nodes appear, and "as of" moves on.
            page.wait_for_selector(".clusternb-panel tr.clusternb-worker >> text=worker-5", timeout=30_000)
            page.wait_for_function(
                "(old) => !document.querySelector('.clusternb-panel').innerText.includes('as of ' + old)",
                arg=as_of.group(1),
                timeout=30_000,
            )
            assert "● live" in panel.inner_text()
            time.sleep(4)  # a few samples of the fed nodes, so the charts show lines rather than dots
            page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
            time.sleep(1.5)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            panel.screenshot(path=str(SCREENSHOT))
            assert SCREENSHOT.stat().st_size > 20_000
            if os.environ.get("CLUSTERNB_UPDATE_SCREENSHOTS") == "1":
                shutil.copyfile(SCREENSHOT, REPO / "docs" / "panel.png")
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print("page screenshot:", tmp_path / "failure.png")
            raise
        finally:
            browser.close()
