"""A real ``jupyter server`` subprocess with clusternb reading a synthetic cluster (e2e tests, benchmarks).

The server's config file imports :func:`synthetic_store` (this repository is put on ``sys.path``), so the
extension reads N made-up nodes instead of sampling the host, and a thread in the server changes one node's
CPU every ``change_every`` seconds: the only data change, so the page and the WebSocket have something to
show move. Loopback only, a free port, a random token; stopped with SIGTERM (then SIGKILL) on exit.
"""

from __future__ import annotations

import math
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from clusternb.state.memory import MemoryStateStore
from tests.helpers import free_port, make_snapshot, stop_process

REPO = Path(__file__).resolve().parents[1]


def wait_until_serving(
    proc: subprocess.Popen[bytes], status_url: str, headers: dict[str, str], log: Path, seconds: float = 60.0
) -> None:
    """Return once the server at ``status_url`` answers 200; raise (with its log's tail) if it exits or stays
    silent for ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter server exited: {log.read_text()[-3000:]}")
        try:
            request = urllib.request.Request(status_url, headers=headers)
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"jupyter server did not answer within {seconds:.0f} s")
        time.sleep(0.2)


def synthetic_store(nodes: int = 12, history_s: float = 0.0, step_s: float = 10.0, change_every: float = 0.0) -> Any:
    """A MemoryStateStore with ``nodes`` nodes (optionally with history), changing node 0 periodically."""
    store = MemoryStateStore(window=max(3600.0, history_s + 60), max_samples=20_000)
    now = time.time()
    names = [f"node-{i:04d}" for i in range(nodes)]

    def snap(i: int, t: float, cpu: float | None = None) -> Any:
        phase = t / 240.0 + i * 0.7  # smooth, per-node shifted waves: plausible charts, deterministic values
        wave = 0.5 + 0.5 * math.sin(phase)
        return make_snapshot(
            names[i],
            time=t,
            ip=f"10.0.{i // 250}.{i % 250 + 1}",
            cpu_percent=cpu if cpu is not None else round(10.0 + 60.0 * wave + 3 * (i % 5), 1),
            mem_used_bytes=int((3 + 4 * wave + (i % 6)) * 2**30),
            net_rx_bps=2e5 * (1 + 4 * wave),
            net_tx_bps=8e4 * (1 + 3 * math.cos(phase) ** 2),
            load_1=round(8 * wave, 2),
            disk_used_bytes=(20 + i % 70) * 2**30,
        )

    steps = int(history_s / step_s)
    for k in range(steps, -1, -1):
        for i in range(nodes):
            store.put(snap(i, now - k * step_s))
    if change_every > 0:

        def change() -> None:
            n = 0
            while True:
                time.sleep(change_every)
                n += 1
                store.put(snap(0, time.time(), cpu=float(10 + (n * 23) % 80)))

        threading.Thread(target=change, name="synthetic-changes", daemon=True).start()
    return store


class JupyterServer:
    """``with JupyterServer(nodes=12) as server: server.url("clusternb/")``."""

    def __init__(self, extra_config: str = "", **store_args: Any) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.tmp = tempfile.TemporaryDirectory(prefix="clusternb-server-")
        config = Path(self.tmp.name) / "server_config.py"
        config.write_text(
            "import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from tests.server_process import synthetic_store\n"
            "c = get_config()  # noqa\n"
            "c.ServerApp.jpserver_extensions = {'clusternb': True}\n"
            "c.ClusterNBApp.sample_host = False\n"
            f"c.ClusterNBApp.state_store = lambda: synthetic_store(**{store_args!r})\n"
            "c.ClusterNB.stale_after = 3600.0\n"
            "c.ClusterNB.offline_after = 7200.0\n" + extra_config
        )
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(self.tmp.name) / "server.log"

    def url(self, path: str = "", token: bool = False) -> str:
        query = f"?token={self.token}" if token else ""
        return f"http://127.0.0.1:{self.port}/{path}{query}"

    def __enter__(self) -> JupyterServer:
        cmd = [sys.executable, "-m", "jupyter", "server", "--no-browser", f"--config={self.config}"]
        cmd += [f"--port={self.port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}"]
        cmd += [f"--ServerApp.root_dir={self.tmp.name}", "--ServerApp.port_retries=0"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(Path(self.tmp.name) / "runtime")}
        self.proc = subprocess.Popen(
            cmd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            wait_until_serving(self.proc, self.url("api/status"), {"Authorization": f"token {self.token}"}, self.log)
        except RuntimeError:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
        self.tmp.cleanup()
