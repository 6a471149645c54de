"""The server extension under load: REST throughput and latency, gzip ratio, WebSocket fan-out to 1,000 clients.

One ``jupyter server`` subprocess (loopback, free port, token) whose clusternb extension reads 1,000 synthetic
nodes (no host sampling; node 0 changes every second) and which also runs jupyter-resource-usage. wrk measures
``/clusternb/api/workers`` against jupyter-resource-usage's ``/api/metrics/v1`` and the server's own
``/api/status`` at concurrency 1 and 32 (gzip accepted, as browsers do; clusternb's rate limit off). Then 1,000
WebSocket clients subscribe to ``status`` and the time from the broadcaster publishing a change to each client
receiving it is measured for several changes. Bounded: fixed durations, fixed counts, stops by itself.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.server_process import JupyterServer

NODES = 1000
CLIENTS = 1000
CHANGES = 5
DURATION = "4s"
EXTRA = (
    "c.ServerApp.jpserver_extensions = {'clusternb': True, 'jupyter_resource_usage': True}\n"
    "c.ClusterNBApp.rate_limit = 0.0\n"
    "c.ClusterNBApp.push_interval = 0.25\n"
)


def wrk(url: str, token: str, connections: int) -> tuple[float, float, float]:
    """(requests/s, p50 s, p99 s) from ``wrk --latency``."""
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{DURATION}", "--latency"]
    cmd += ["-H", f"Authorization: token {token}", "-H", "Accept-Encoding: gzip", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"  warning: {non2xx.group(1)} non-2xx responses from {url}", file=sys.stderr)
    return rps, pct("50"), pct("99")


def gzip_ratio(server: JupyterServer) -> tuple[int, int]:
    request = urllib.request.Request(
        server.url("clusternb/api/workers"),
        headers={"Authorization": f"token {server.token}", "Accept-Encoding": "gzip"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        packed = response.read()
    return len(gzip.decompress(packed)), len(packed)


async def fanout(server: JupyterServer) -> list[float]:
    """Seconds from 'published' to receipt, for every client and every change."""
    url = server.url("clusternb/api/ws").replace("http", "ws", 1) + f"?token={server.token}"
    gate = asyncio.Semaphore(50)

    async def connect() -> object:
        async with gate:
            ws = await websocket_connect(HTTPRequest(url, connect_timeout=60), max_message_size=1 << 26)
            ws.write_message(orjson.dumps({"subscribe": ["status"]}).decode())
            for _ in range(2):  # "subscribed", then the initial state
                await ws.read_message()
            return ws

    sockets = await asyncio.gather(*(connect() for _ in range(CLIENTS)))
    delays: list[float] = []

    async def listen(ws: object) -> None:
        for _ in range(CHANGES):
            raw = await asyncio.wait_for(ws.read_message(), 30)  # type: ignore[attr-defined]
            received = time.time()
            assert raw is not None
            delays.append(received - orjson.loads(raw)["published"])

    await asyncio.gather(*(listen(ws) for ws in sockets))
    for ws in sockets:
        ws.close()  # type: ignore[attr-defined]
    return delays


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> int:
    with JupyterServer(EXTRA, nodes=NODES, change_every=1.0) as server:
        raw, packed = gzip_ratio(server)
        endpoints = {
            "clusternb /clusternb/api/workers": server.url("clusternb/api/workers"),
            "jupyter-resource-usage /api/metrics/v1": server.url("api/metrics/v1"),
            "jupyter_server /api/status": server.url("api/status"),
        }
        rows = {}
        for name, url in endpoints.items():
            for conns in (1, 32):
                rows[(name, conns)] = wrk(url, server.token, conns)
        delays = asyncio.run(fanout(server))

    print("| endpoint | concurrency | req/s | p50 | p99 |")
    print("|---|---:|---:|---:|---:|")
    for (name, conns), (rps, p50, p99) in rows.items():
        print(f"| {name} | {conns} | {rps:,.0f} | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms |")
    saved = 1 - packed / raw
    status = rows[("jupyter_server /api/status", 32)]
    workers = rows[("clusternb /clusternb/api/workers", 32)]
    print()
    print(f"workers payload ({NODES} nodes): {raw:,} B JSON -> {packed:,} B gzip ({saved:.1%} smaller)")
    print(f"/workers vs /api/status req/s at concurrency 32: {workers[0] / status[0]:.2f}x")
    print(
        f"WebSocket fan-out, {CLIENTS} clients x {CHANGES} changes: p50 {p(delays, 0.5) * 1e3:.1f} ms, "
        f"p99 {p(delays, 0.99) * 1e3:.1f} ms, max {max(delays) * 1e3:.1f} ms"
    )
    print()
    checks = [
        (f"gzip >= 85 % smaller ({saved:.1%})", saved >= 0.85),
        (f"/workers c=32 >= 0.5x /api/status req/s ({workers[0] / status[0]:.2f}x)", workers[0] >= 0.5 * status[0]),
        (f"/workers c=32 p99 <= 50 ms ({workers[2] * 1e3:.1f} ms)", workers[2] <= 0.050),
        (
            f"all {CLIENTS} WS clients notified within 250 ms p99 ({p(delays, 0.99) * 1e3:.1f} ms)",
            p(delays, 0.99) <= 0.25,
        ),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
