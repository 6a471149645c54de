"""What one JupyterLab tab with clusternb's extension receives: WebSocket frames and bytes per minute.

A real redis-server holds N nodes (published as agents would, with a one-hour interval so none goes stale),
a real ``jupyter lab`` reads it (push interval 0.5 s), and headless Chromium opens one Lab page: the status
bar and the notifier share its one WebSocket (topics status and alerts; the sidebar, closed, follows nothing).
Frames are counted from outside the page, by Playwright's ``framereceived`` on that socket, after the first
paint (the initial states) for a fixed window, in these scenarios:

- **unchanged**: nothing is published during the window;
- **one node changing each second**: node-0000's CPU moves every second (a new snapshot in Redis);
- the same with the sidebar open (it adds the workers and kernels topics; no kernel runs here), then also with a
  dashboard tab (metrics).

Also counted: how often the status bar item rewrote its DOM. Bounded: fixed windows, stops by itself.
``--seconds`` sets the window (default 60), ``--nodes`` the cluster size (default 12).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from clusternb.state.redis import RedisStateStore
from tests.browser import ARGS, CHROMIUM
from tests.helpers import make_snapshot
from tests.lab_process import Lab
from tests.redis_server import RedisServer


class Counter:
    """Frames and bytes received on the page's clusternb socket, by message type and topic."""

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.kinds: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def on_frame(self, payload: str | bytes) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        try:
            message = orjson.loads(data)
            kind = f"{message.get('type')}:{message.get('topic', '')}".rstrip(":")
        except orjson.JSONDecodeError:
            kind = "?"
        with self.lock:
            self.frames += 1
            self.bytes += len(data)
            self.kinds[kind] += 1

    def snapshot(self) -> tuple[int, int, collections.Counter[str]]:
        with self.lock:
            return self.frames, self.bytes, collections.Counter(self.kinds)


def publish(store: RedisStateStore, nodes: int, cpu_of_first: float | None = None) -> None:
    for i in range(nodes if cpu_of_first is None else 1):
        cpu = cpu_of_first if cpu_of_first is not None else 10.0 + 5 * (i % 7)
        store.put(make_snapshot(f"node-{i:04d}", time=time.time(), interval_s=3600.0, cpu_percent=cpu))


def window(page: Any, counter: Counter, seconds: float, change: Any = None) -> tuple[float, float, str, int]:
    """Frames/min, bytes/min, the top kinds and status-bar renders over ``seconds`` (``change()`` each second)."""
    renders0 = page.evaluate("() => window.clusternb.status.renders")
    frames0, bytes0, kinds0 = counter.snapshot()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        if change is not None:
            n += 1
            change(n)
        page.wait_for_timeout(1000)  # lets Playwright deliver the frame events meanwhile
    frames1, bytes1, kinds1 = counter.snapshot()
    renders = page.evaluate("() => window.clusternb.status.renders") - renders0
    scale = 60.0 / seconds
    kinds = kinds1 - kinds0
    top = ", ".join(f"{k} {v * scale:.0f}" for k, v in kinds.most_common(4)) or "none"
    return (frames1 - frames0) * scale, (bytes1 - bytes0) * scale, top, renders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--nodes", type=int, default=12)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    redis = RedisServer().start()
    store = RedisStateStore(redis.url)
    publish(store, args.nodes)
    tmp = tempfile.TemporaryDirectory(prefix="clusternb-bench-lab-")
    rows: list[tuple[str, float, float, str, int]] = []
    try:
        with Lab(Path(tmp.name), redis.url) as lab, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            counter = Counter()
            sockets: list[str] = []

            def on_socket(ws: Any) -> None:
                if "clusternb/api/ws" in ws.url:
                    sockets.append(ws.url)
                    ws.on("framereceived", counter.on_frame)

            page.on("websocket", on_socket)
            page.goto(lab.url())
            page.wait_for_function("() => window.clusternb?.status !== undefined", timeout=60_000)
            page.wait_for_function(
                f"() => document.querySelector('.clusternb-StatusItem')?.innerText.includes('of {args.nodes}')",
                timeout=60_000,
            )
            page.wait_for_timeout(3000)  # the first paint: subscription, initial states
            first = counter.snapshot()
            rows.append(("first paint (status, alerts)", first[0], first[1], "", 0))

            rows.append(("unchanged data", *window(page, counter, args.seconds)))

            def change(n: int) -> None:
                publish(store, args.nodes, cpu_of_first=float(10 + (n * 23) % 80))

            rows.append(("one node changing each second", *window(page, counter, args.seconds, change)))
            page.evaluate("() => window.jupyterapp.shell.activateById('clusternb-sidebar')")
            page.wait_for_selector("#clusternb-sidebar .clusternb-node", timeout=30_000)
            rows.append(("same, sidebar open", *window(page, counter, args.seconds, change)))
            page.evaluate("() => window.jupyterapp.commands.execute('clusternb:open-dashboard')")
            page.wait_for_selector(".clusternb-Dashboard iframe", timeout=30_000)
            page.wait_for_timeout(3000)
            rows.append(("same, sidebar and a dashboard tab open", *window(page, counter, args.seconds, change)))
            assert len(sockets) == 1, sockets
            browser.close()
    finally:
        store.close()
        redis.stop()
        tmp.cleanup()

    print(f"One Lab tab, {args.nodes} nodes, push interval 0.5 s, window {args.seconds:.0f} s, 1 WebSocket\n")
    print(f"| {'scenario':<38} | {'frames/min':>10} | {'bytes/min':>11} | status bar redraws | frames by type/min")
    print(f"|{'-' * 40}|{'-' * 12}|{'-' * 13}|--------------------|-------------------")
    for name, frames, size, top, renders in rows:
        print(f"| {name:<38} | {frames:>10.0f} | {size:>11,.0f} | {renders:>18} | {top}")
    print("\n(first paint: totals, not per minute)")


if __name__ == "__main__":
    main()
