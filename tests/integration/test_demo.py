"""The demo cluster starts real processes, lets tests break them, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from clusternb.demo import Demo, DemoError
from clusternb.state.redis import RedisStateStore

pytestmark = pytest.mark.redis


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def test_demo_runs_agents_and_tears_everything_down() -> None:
    with Demo(n_agents=2, interval=0.5) as demo:
        assert demo.redis is not None and demo.dir is not None
        workdir = demo.dir
        pids = [demo.redis.pid, *(p.pid for p in demo.agents.values())]
        assert demo.wait_ready(60), [demo.log_path(n).read_text() for n in demo.names]
        store = RedisStateStore(demo.url, socket_timeout=2.0)
        labels = {s.node: dict(s.labels) for s in store.latest()}
        assert labels == {
            "demo-1": {"index": "1", "rack": "rack-a"},
            "demo-2": {"index": "2", "rack": "rack-b"},
        }

        demo.kill("demo-1")
        assert not demo.running("demo-1")
        old_pid = demo.agents["demo-1"].pid
        demo.start("demo-1")
        assert demo.running("demo-1") and demo.agents["demo-1"].pid != old_pid
        pids.append(demo.agents["demo-1"].pid)

        assert demo.stop("demo-2") == 0
        assert "demo-2" in store.departed()
        with pytest.raises(DemoError, match="no agent 'demo-9'"):
            demo.kill("demo-9")
        store.close()

    assert gone(pids)
    assert not port_open(demo.port)
    assert not workdir.exists()
    demo.close()  # idempotent


def test_demo_cli_prints_the_url_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusternb.cli", "demo", "--agents", "2", "--interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # the pipe closes if the demo dies, so this loop ends either way
            lines.append(line)
            if line.startswith("export CLUSTERNB_REDIS_URL="):
                break
        assert lines and lines[-1].startswith("export CLUSTERNB_REDIS_URL=redis://127.0.0.1:"), lines
        url = lines[-1].strip().split("=", 1)[1]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) == 3  # redis-server and two agents
        store = RedisStateStore(url, socket_timeout=2.0)
        assert {s.node for s in store.latest()} == {"demo-1", "demo-2"}
        store.close()

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "stopped" in out
        wait_for("every child to exit", lambda: gone([c.pid for c in children]), timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for child in children:
            if child.is_running():
                child.kill()


def test_demo_without_redis_server_is_a_one_line_error(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty directory: no redis-server anywhere
    out = subprocess.run(
        [sys.executable, "-m", "clusternb.cli", "demo"], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 2
    assert "redis-server not found" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
