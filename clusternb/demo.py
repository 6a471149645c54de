"""A throwaway cluster on one host: a private redis-server and N ``clusternb agent`` processes, torn down on exit.

It exists so cluster mode can be tried (and tested, and shown in a notebook) without a cluster: the agents are
the real command, started the way an operator would start them, so what the demo shows is what production does.
Children run in their own session, so a Ctrl-C in the terminal reaches only this process, which then stops
the agents first (they record their departure while Redis is still up) and Redis last.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import redis

import clusternb
from clusternb.arguments import ArgumentError, BadInput
from clusternb.redisio.errors import RedisFault
from clusternb.state.redis import RedisStateStore

#: Seconds an agent or redis-server gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0
_RACKS = "abc"


class DemoError(RuntimeError):
    """The demo cluster could not start (no redis-server binary, port taken, unknown agent name)."""


class Demo:
    """``with Demo(n_agents=3) as demo: demo.url`` -- a redis-server on a free port and agents demo-1 .. demo-N."""

    def __init__(self, n_agents: int = 3, interval: float = 1.0, port: int | None = None) -> None:
        if n_agents < 1:
            raise ArgumentError("n_agents", f"must be >= 1, got {n_agents}")
        if not 0.05 <= interval <= 3600:  # the agents' own limit: fail here, not in N agent logs
            raise ArgumentError("interval", f"must be between 0.05 and 3600 seconds, got {interval}")
        self.interval = interval
        self.port = port or _free_port()
        self.names = [f"demo-{i}" for i in range(1, n_agents + 1)]
        #: The current process of each agent (a restarted agent replaces its entry).
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.dir: Path | None = None
        self.redis: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # -- lifecycle ------------------------------------------------------------------------------------------

    def open(self) -> Demo:
        """Start redis-server, then every agent. On any failure (or Ctrl-C) everything started is stopped."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise DemoError("redis-server not found on PATH: install it (Debian/Ubuntu: apt-get install redis-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="clusternb-demo-"))
        atexit.register(self.close)
        try:
            self._start_redis(binary)
            for name in self.names:
                self.start(name)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """SIGTERM every agent (then SIGKILL stragglers), stop redis-server, remove the temp dir. Idempotent."""
        atexit.unregister(self.close)
        with _sigint_ignored():  # an impatient second Ctrl-C must not leave half the processes running
            self._teardown()

    def _teardown(self) -> None:
        procs = [p for p in self.agents.values() if p.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in procs:
            _reap(proc, deadline)
        if self.redis is not None:
            self.redis.send_signal(signal.SIGTERM)
            _reap(self.redis, time.monotonic() + STOP_TIMEOUT)
            self.redis = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Demo:
        return self.open()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- agents ---------------------------------------------------------------------------------------------

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start agent ``name`` (again, after :meth:`stop` or :meth:`kill`); a running agent is left alone."""
        index = self._index(name)
        proc = self.agents.get(name)
        if proc is not None and proc.poll() is None:
            return proc
        assert self.dir is not None, "Demo.start() needs an open demo"
        cmd = [sys.executable, "-m", "clusternb.cli", "agent", "--redis", self.url, "--name", name]
        cmd += ["--interval", repr(self.interval), "--label", f"index={index}"]
        cmd += ["--label", f"rack=rack-{_RACKS[(index - 1) % len(_RACKS)]}"]
        env = dict(os.environ)
        # The agents import the same clusternb as this process, installed or not.
        package_root = str(Path(clusternb.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
            )
        self.agents[name] = proc
        return proc

    def stop(self, name: str, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM agent ``name`` (it records its departure) and wait; returns its exit status."""
        proc = self.agents.get(self._name(name))
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return _reap(proc, time.monotonic() + timeout)

    def kill(self, name: str) -> None:
        """SIGKILL agent ``name``: it vanishes without a word, as on a crashed node."""
        proc = self.agents.get(self._name(name))
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def running(self, name: str) -> bool:
        proc = self.agents.get(self._name(name))
        return proc is not None and proc.poll() is None

    def log_path(self, name: str) -> Path:
        """Where agent ``name`` writes its log (inside the temp dir, removed on close)."""
        assert self.dir is not None, "the demo is not open"
        return self.dir / f"{self._name(name)}.log"

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block until every running agent has published at least once; False on timeout or if none runs."""
        store = RedisStateStore(self.url, socket_timeout=2.0)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                wanted = {n for n in self.names if self.running(n)}
                if not wanted:
                    return False
                try:
                    if wanted <= {s.node for s in store.latest()}:
                        return True
                except RedisFault:
                    pass
                time.sleep(0.1)
            return False
        finally:
            store.close()

    # -- helpers --------------------------------------------------------------------------------------------

    def _start_redis(self, binary: str) -> None:
        assert self.dir is not None
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        self.redis = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        deadline = time.monotonic() + 10.0
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.redis.poll() is not None or time.monotonic() > deadline:
                        log = (self.dir / "redis.log").read_text(errors="replace").strip().splitlines()
                        last = log[-1] if log else "no log"
                        raise DemoError(f"redis-server did not start on port {self.port}: {last}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def _name(self, name: str) -> str:
        self._index(name)
        return name

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise DemoError(f"no agent {name!r} in this demo; agents are {', '.join(self.names)}")
        return self.names.index(name) + 1


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _reap(proc: subprocess.Popen[bytes], deadline: float) -> int:
    try:
        return proc.wait(max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_demo(n_agents: int = 3, interval: float = 1.0, port: int | None = None) -> int:
    """The ``clusternb demo`` command: start, print how to connect, wait for Ctrl-C (or SIGTERM), tear down."""

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Demo(n_agents, interval, port) as demo:
            ready = demo.wait_ready()
            print(f"clusternb demo: redis-server at {demo.url}, agents {', '.join(demo.names)}")
            if not ready:
                print(f"warning: not every agent has published yet; their logs are in {demo.dir}", file=sys.stderr)
            print(f"export CLUSTERNB_REDIS_URL={demo.url}")
            print("then `clusternb workers` in a shell, or clusternb.workers() in a notebook. Ctrl-C stops the demo.")
            sys.stdout.flush()
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except DemoError as exc:
        raise BadInput(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("clusternb demo: stopped")
    return 0
