"""kernels() against real Jupyter servers with real kernels, publishing through a real Redis.

Two ``jupyter server`` processes with the extension, on two ports, publish to one redis-server. Kernels are
started through the servers' REST API (sessions, so each has a notebook path); one of them is made to allocate
about 300 MB and to start a child process that holds 100 MB more, through a real kernel client on the
kernel's connection file. The test process reads ``kernels()`` from the same Redis, as a notebook on another
node would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from jupyter_client import BlockingKernelClient

from clusternb.queries import Client
from tests.helpers import free_port, stop_process
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.server, pytest.mark.redis]

MiB = 2**20
ALLOCATE = """
import os, subprocess, sys
import numpy as np
held = np.ones(300 * 2**20 // 8)  # written, so resident: 300 MiB
child = subprocess.Popen([sys.executable, "-c", '''
import os, time
import numpy as np
parent = os.getppid()
held = np.ones(100 * 2**20 // 8)
while os.getppid() == parent:  # ends with its kernel
    time.sleep(0.2)
'''])
"""


class Server:
    """A jupyter server with the extension, publishing its host and kernels every second to ``redis_url`` (None:
    embedded mode, to its runtime directory)."""

    def __init__(self, root: Path, redis_url: str | None, **env_settings: str) -> None:
        self.port, self.token, self.root = free_port(), "kernels-test", root
        self.runtime = root / "runtime"
        cmd = [sys.executable, "-m", "jupyter", "server", "--no-browser", f"--port={self.port}"]
        cmd += ["--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}"]
        cmd += ["--ServerApp.port_retries=0", "--ServerApp.jpserver_extensions={'clusternb': True}"]
        cmd += [f"--ClusterNB.redis_url={redis_url}"] if redis_url else []
        cmd += ["--ClusterNB.interval=1"]
        cmd += ["--allow-root"] if os.geteuid() == 0 else []
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERNB_")}
        env["JUPYTER_RUNTIME_DIR"] = str(self.runtime)
        env.update(env_settings)
        self.log = root / "server.log"
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        until(self._up, "the server to answer", self)

    def _up(self) -> bool:
        try:
            self.call("api/status")
            return True
        except OSError:
            return False

    def call(self, path: str, body: Any = None, method: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/{path}", data, headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def text(self, path: str) -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/{path}")
        request.add_header("Authorization", f"token {self.token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode())

    def start_kernel(self, path: str) -> str:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        session = self.call("api/sessions", {"path": path, "type": "notebook", "kernel": {"name": "python3"}}, "POST")
        return str(session["kernel"]["id"])

    def execute(self, kernel_id: str, code: str) -> None:
        """Run ``code`` in the kernel through a real kernel client on its connection file."""
        client = BlockingKernelClient(connection_file=str(self.runtime / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            reply = client.execute_interactive(code, timeout=120)
            assert reply["content"]["status"] == "ok", reply["content"]
        finally:
            client.stop_channels()

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)


def until(check: Callable[[], Any], what: str, server: Server | None = None, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns neither None nor False; past ``timeout``, fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            log = server.log.read_text()[-3000:] if server is not None else ""
            pytest.fail(f"timed out waiting for {what}\n{log}")
        time.sleep(0.25)


@pytest.fixture
def servers(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[Server, Server]]:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    first = Server(tmp_path / "one", redis_server.url)
    try:
        second = Server(tmp_path / "two", redis_server.url)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def _rows(reader: Client) -> pd.DataFrame:
    return reader.kernels()


def test_kernels_of_two_servers_with_memory_children_and_shutdown(
    servers: tuple[Server, Server], reader: Client
) -> None:
    one, two = servers
    light = one.start_kernel("a.ipynb")
    heavy = one.start_kernel("work/heavy.ipynb")
    other = two.start_kernel("c.ipynb")
    one.execute(heavy, ALLOCATE)

    def heavy_measured() -> pd.DataFrame | None:
        # The child appears before it has touched its 100 MiB: wait for a sample taken after it did (the
        # assertions below fail with the last frame if that never comes).
        df = _rows(reader)
        if {light, heavy, other} <= set(df.index) and df.loc[heavy, "processes"] >= 2:
            return df if df.loc[heavy, "pss_bytes"] >= 380 * MiB else None
        return None

    df = until(heavy_measured, "three kernels, the heavy one with its child and their 400 MiB")
    assert df.loc[light, "path"] == "a.ipynb"
    assert df.loc[heavy, "path"] == "work/heavy.ipynb"
    assert df.loc[other, "path"] == "c.ipynb"
    assert df.loc[light, "server"] != df.loc[other, "server"]  # two servers, one Redis, one view
    assert df.loc[heavy, "server"] == df.loc[light, "server"]
    # 300 MiB in the kernel and 100 MiB in its child, counted in the kernel; the light kernel holds far less.
    assert df.loc[heavy, "pss_bytes"] >= 380 * MiB
    assert df.loc[heavy, "rss_bytes"] >= 400 * MiB
    assert df.loc[light, "pss_bytes"] < 200 * MiB
    assert df.index[0] == heavy  # largest memory first
    assert bool(df.loc[heavy, "own"])
    assert df.loc[heavy, "mem_share_percent"] > 0
    assert list(reader.kernels(path="work/*").index) == [heavy]
    assert list(reader.kernels(min_memory="350MiB").index) == [heavy]

    # The CLI reads the same: `clusternb kernels --redis URL`, a table with the paths, the heavy kernel first.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERNB_")}
    cli = [sys.executable, "-m", "clusternb.cli", "kernels", "--redis", reader.settings.redis_url]
    table = subprocess.run(cli, capture_output=True, text=True, timeout=60, env=env, check=True).stdout
    assert table.splitlines()[1].startswith(heavy) and "work/heavy.ipynb" in table and "c.ipynb" in table

    # Prometheus: one gauge per kernel, labelled by node, kernel id and kernel name, never by its path.
    exposition = one.text("clusternb/metrics")
    assert f'kernel_id="{heavy}"' in exposition
    assert "# HELP clusternb_kernel_memory_bytes proportional memory" in exposition
    assert "heavy.ipynb" not in exposition

    one.call(f"api/kernels/{light}", method="DELETE")
    until(lambda: light not in _rows(reader).index, "the shut-down kernel to leave kernels()", one)
    assert {heavy, other} <= set(_rows(reader).index)


def test_a_stopped_server_takes_its_kernels_along(servers: tuple[Server, Server], reader: Client) -> None:
    one, two = servers
    first, second = one.start_kernel("x.ipynb"), two.start_kernel("y.ipynb")
    until(lambda: {first, second} <= set(_rows(reader).index), "both servers' kernels")
    one.stop()
    # Before its report could expire (30 s): the stopping server removed it.
    until(lambda: first not in _rows(reader).index, "the stopped server's kernel to leave kernels()", timeout=20)
    assert second in _rows(reader).index


FREE = "del held\nchild.kill()\nchild.wait()\nimport gc\ngc.collect()"


def test_a_runaway_kernel_is_named_by_an_alert_that_resolves_when_it_frees_the_memory(
    tmp_path: Path, redis_server: RedisServer, reader: Client
) -> None:
    node_memory = psutil_memory()
    # Fires above 350 MiB (the kernel will hold about 400), clears below 150 MiB (an idle kernel holds about 50).
    rule = {
        "name": "kernel_memory", "metric": "kernel_memory_percent", "op": ">", "for": 0,
        "threshold": 100 * 350 * MiB / node_memory, "clear": 100 * 150 * MiB / node_memory,
    }  # fmt: skip
    server = Server(tmp_path, redis_server.url, CLUSTERNB_ALERT_RULES=json.dumps([rule]))
    try:
        kernel = server.start_kernel("runaway.ipynb")
        server.execute(kernel, ALLOCATE)

        def kernel_alerts(state: str) -> pd.DataFrame | None:
            df = reader.alerts(active=False)
            mine = df[df["rule"] == "kernel_memory"]
            return mine if (mine["state"] == state).any() else None

        firing = until(lambda: kernel_alerts("firing"), "the kernel's memory alert to fire", server)
        assert list(firing["node"]) == [f"{_node(reader)}/kernel-{kernel[:8]}"]
        assert "runaway.ipynb" not in firing["message"].iloc[0]  # alerts are seen by every user: no path
        server.execute(kernel, FREE)
        resolved = until(lambda: kernel_alerts("resolved"), "the alert to resolve once the memory is freed", server)
        assert len(resolved) == 1  # fired once, resolved once: one record, never a second alert
    finally:
        server.stop()


def psutil_memory() -> int:
    """The node's memory as kernel shares count it: its container limit where one applies, else its total."""
    import psutil

    from clusternb.sources.cgroups import LimitsReader

    total = psutil.virtual_memory().total
    limit = LimitsReader(psutil.cpu_count() or 1, total).read().mem_limit_bytes
    return int(limit or total)


def _node(reader: Client) -> str:
    return str(reader.workers().index[0])


IN_THE_NOTEBOOK = """
import clusternb
df = clusternb.kernels(me=True)
assert "mine.ipynb" in set(df["path"].dropna()), df[["path"]]
assert df.loc[df["path"] == "mine.ipynb", "pss_bytes"].iloc[0] > 0
"""


def test_a_notebook_sees_its_own_kernel_without_redis(tmp_path: Path) -> None:
    """Embedded mode, as after `make lab`: the notebook's kernel asks kernels() and finds itself, by its path."""
    server = Server(tmp_path, None)
    try:
        kernel = server.start_kernel("mine.ipynb")
        deadline = time.monotonic() + 60
        while True:  # the server publishes its first report within an interval of the kernel's start
            try:
                server.execute(kernel, IN_THE_NOTEBOOK)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        server.stop()
