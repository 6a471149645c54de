"""The server extension under load: REST throughput and latency, gzip ratio, WebSocket fan-out to 1,000 clients.

One ``jupyter server`` subprocess (loopback, free port, token) whose clusternb extension reads 1,000 synthetic
nodes (no host sampling; node 0 changes every second) and which also runs jupyter-resource-usage. wrk measures
``/clusternb/api/workers`` against jupyter-resource-usage's ``/api/metrics/v1`` and the server's own
``/api/status`` at concurrency 1 and 32 (gzip accepted, as browsers do; clusternb's rate limit off). Then 1,000
WebSocket clients (in a few processes: one Python loop is too slow to read 1,000 sockets) subscribe to ``status``;
the time from the broadcaster publishing a change to each client receiving it is measured for several changes,
beside the server's own fan-out time (message created -> last write completed, from its Prometheus histogram).
Bounded: fixed durations, fixed counts, stops by itself.
"""

from __future__ import annotations

import asyncio
import gzip
import multiprocessing
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.server_process import JupyterServer

NODES = 1000
CLIENTS = 1000
CLIENT_PROCESSES = 4
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


async def fanout_clients(url: str, count: int, ready: Any, go: Any) -> list[float]:
    """``count`` clients on this process's loop; seconds from 'published' to receipt per client and change."""
    gate = asyncio.Semaphore(50)

    async def connect() -> Any:
        async with gate:
            ws = await websocket_connect(HTTPRequest(url, connect_timeout=60), max_message_size=1 << 26)
            ws.write_message(orjson.dumps({"subscribe": ["status"]}).decode())
            for _ in range(2):  # "subscribed", then the initial state
                await ws.read_message()
            return ws

    sockets = await asyncio.gather(*(connect() for _ in range(count)))
    ready.set()
    go.wait()  # every process connected
    # Pushes published while clients were still connecting (or this process sat in go.wait()) waited in
    # socket buffers for the benchmark, not for the server: they are read and not counted. (The old
    # single-loop version counted them, which inflated its tail.)
    start = time.time()
    delays: list[float] = []

    async def listen(ws: Any) -> None:
        counted = 0
        while counted < CHANGES:
            raw = await asyncio.wait_for(ws.read_message(), 30)
            received = time.time()
            assert raw is not None
            published = orjson.loads(raw)["published"]
            if published >= start:
                delays.append(received - published)
                counted += 1

    await asyncio.gather(*(listen(ws) for ws in sockets))
    for ws in sockets:
        ws.close()
    return delays


def _client_process(url: str, count: int, ready: Any, go: Any, out: Any) -> None:
    out.put(asyncio.run(fanout_clients(url, count, ready, go)))


def _lean_client_process(url: str, count: int, ready: Any, go: Any, out: Any) -> None:
    """``count`` lean clients (benchmarks/_lean_ws.py) on one selectors loop; delays as in :func:`fanout_clients`."""
    from benchmarks._lean_ws import connect, read_all

    socks = [connect(url, ["status"]) for _ in range(count)]
    ready.set()
    go.wait()
    start = time.time()
    delays: list[float] = []

    def on_frame(payload: bytes, received: float) -> bool:
        message = orjson.loads(payload)
        if message.get("type") != "state" or message["published"] < start:
            return False  # a "fresh" confirmation, or a push published before every client was ready
        delays.append(received - message["published"])
        return True

    read_all(socks, CHANGES, on_frame, limit=60)
    for sock in socks:
        sock.close()
    out.put(delays)


def fanout(server: JupyterServer, lean: bool = True) -> list[float]:
    """End-to-end push delays of CLIENTS clients spread over CLIENT_PROCESSES processes.

    One Python loop cannot read 1,000 sockets fast enough to measure the server rather than itself, so the
    clients are split; they still share the machine's cores with the server, so the figure is an upper bound.
    ``lean``: the readers of benchmarks/_lean_ws.py (recv and frame headers only) instead of tornado's client,
    whose per-message cost made the readers, not the server, the tail on 2 cores.
    """
    url = server.url("clusternb/api/ws").replace("http", "ws", 1) + f"?token={server.token}"
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    readies = [ctx.Event() for _ in range(CLIENT_PROCESSES)]
    share = [CLIENTS // CLIENT_PROCESSES + (i < CLIENTS % CLIENT_PROCESSES) for i in range(CLIENT_PROCESSES)]
    procs = [
        ctx.Process(target=_lean_client_process if lean else _client_process, args=(url, n, r, go, out), daemon=True)
        for n, r in zip(share, readies, strict=True)
    ]
    for proc in procs:
        proc.start()
    for ready in readies:
        if not ready.wait(120):
            raise RuntimeError("WebSocket clients did not connect within 120 s")
    go.set()
    delays: list[float] = []
    for _ in procs:
        delays.extend(out.get(timeout=120))
    for proc in procs:
        proc.join(10)
    return delays


def fanout_histogram(server: JupyterServer) -> tuple[int, float, float]:
    """(broadcasts, mean s, upper bound s of the slowest) of the server's own fan-out histogram."""
    request = urllib.request.Request(
        server.url("clusternb/metrics"), headers={"Authorization": f"token {server.token}"}
    )
    with urllib.request.urlopen(request) as response:
        text = response.read().decode()
    prefix = "clusternb_websocket_fanout_seconds"
    count = float(re.search(rf"^{prefix}_count (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    total = float(re.search(rf"^{prefix}_sum (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    buckets = [(float(le), float(n)) for le, n in re.findall(rf'^{prefix}_bucket{{le="([^"]+)"}} (\S+)$', text, re.M)]
    slowest = min((le for le, n in buckets if n >= count), default=float("inf"))
    return int(count), total / count if count else 0.0, slowest


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> int:
    fanout_only = "--fanout-only" in sys.argv[1:]  # the WebSocket part alone, without the REST runs
    with JupyterServer(EXTRA, nodes=NODES, change_every=1.0) as server:
        if fanout_only:
            lean = "--tornado-clients" not in sys.argv[1:]
            delays = fanout(server, lean=lean)
            broadcasts, fan_mean, fan_max = fanout_histogram(server)
            print(f"readers: {'lean (benchmarks/_lean_ws.py)' if lean else 'tornado websocket_connect'}")
            print_fanout(delays, broadcasts, fan_mean, fan_max)
            return 0
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
        delays = fanout(server)
        broadcasts, fan_mean, fan_max = fanout_histogram(server)

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
    print_fanout(delays, broadcasts, fan_mean, fan_max)
    checks = [
        (f"gzip >= 85 % smaller ({saved:.1%})", saved >= 0.85),
        (f"/workers c=32 >= 0.5x /api/status req/s ({workers[0] / status[0]:.2f}x)", workers[0] >= 0.5 * status[0]),
        (f"/workers c=32 p99 <= 50 ms ({workers[2] * 1e3:.1f} ms)", workers[2] <= 0.050),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}: {text}")
    return 0


def print_fanout(delays: list[float], broadcasts: int, fan_mean: float, fan_max: float) -> None:
    print(
        f"WebSocket push, end to end ('published' -> received by the client, {CLIENTS} clients in "
        f"{CLIENT_PROCESSES} processes x {CHANGES} changes): p50 {p(delays, 0.5) * 1e3:.1f} ms, "
        f"p99 {p(delays, 0.99) * 1e3:.1f} ms, max {max(delays) * 1e3:.1f} ms"
    )
    print(
        f"WebSocket fan-out, server side (message created -> last subscriber's write completed, "
        f"{broadcasts} broadcasts, some while clients were still connecting): mean {fan_mean * 1e3:.1f} ms, "
        f"slowest <= {fan_max * 1e3:.0f} ms (histogram bucket)"
    )
    print()
    p99 = p(delays, 0.99)
    verdict = "PASS" if p99 <= 0.1 else "MISS"
    print(f"{verdict}: all {CLIENTS} WS clients notified within 100 ms p99 ({p99 * 1e3:.1f} ms)")


if __name__ == "__main__":
    sys.exit(main())
