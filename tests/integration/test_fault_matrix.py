"""The fault matrix: every face of clusternb against every Redis fault. Nothing from Redis may break, stall or
fool a user.

Faces: the Python API (``Client``: workers, cluster_status, metrics, alerts, alerts(active=False),
cache_status, acknowledge), every GET endpoint of the REST API (a real Jupyter server with the extension, on the
same Redis), the WebSocket (subscribe to status and workers, receive the initial frames) and the CLI
(``status``, ``workers``, ``alerts``, ``metrics``).

Faults: Redis SIGKILLed then restarted on the same port; SIGSTOPped for 5 s; unreachable from the start; a wrong
password; bad records of every kind planted in every key clusternb reads; a forged cache entry (valid header
and hash, a payload that is not Arrow) under the key the next query uses; a key of the wrong Redis type under
each name clusternb uses. (A Redis Cluster failover is ``test_redis_cluster.py``'s.)

What must hold: no exception reaches a caller (a clear ``ValueError`` from ``acknowledge`` excepted), no HTTP
5xx, no traceback from the CLI (exit 0 when Redis answered, 3 and exactly one stderr line when it could not be
reached), every rejected record counted, and once the fault ends, the same processes are back on Redis.

Each test collects every failed cell of its fault before asserting (one assertion listing them all, with the
traceback of any exception that reached a caller), so one run shows the whole row of the matrix.

The CLI runs as a real ``python -m clusternb.cli`` subprocess where a fault gives it time (unreachable from
the start, wrong password). Elsewhere it runs through :class:`WarmCLI`: a process that imported clusternb's
dependencies once and forks, per command, a child that executes ``clusternb.cli`` as ``__main__`` exactly as
``python -m`` does (same argv, environment, stdout/stderr, exit status, uncaught exceptions printed as
tracebacks, atexit handlers run). Importing pandas and pyarrow costs ~3 s of CPU per process on the 2-core
test machines; forking skips only that, and it is what lets a CLI run land inside a 5 s SIGSTOP.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
import pandas as pd
import pytest
import redis
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from clusternb.alerting.records import Alert, Transition
from clusternb.alerting.runtime import AlertRuntime
from clusternb.alerting.store import PREFIX as ALERTS_PREFIX
from clusternb.alerting.store import RedisAlertStore
from clusternb.cache.codec import FORMAT_VERSION, MAGIC, entry_from_bytes
from clusternb.config import load_config
from clusternb.kernel_usage.board import KEY as KERNELS_KEY
from clusternb.kernel_usage.board import RedisBoard
from clusternb.kernel_usage.record import encode_report
from clusternb.model import BYTES_MAX, SCHEMA_VERSION, TIME_MAX
from clusternb.queries import Client
from clusternb.redisio.link import LinkOptions, RedisLink
from clusternb.rejects import Rejections
from clusternb.state.redis import PREFIX as STATE_PREFIX
from clusternb.state.redis import RedisStateStore
from tests.helpers import free_port, make_report, make_snapshot, stop_process
from tests.jupyter_fixtures import *  # noqa: F403
from tests.jupyter_fixtures import extension, on_server_loop
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.server]

TIMEOUT = 0.2  # redis_socket_timeout of every client under test
NODES = ("fm-a", "fm-b", "fm-c")
NEW_NODE = "fm-new"
ACK_ID = f"disk_critical:{NODES[0]}"  # fired by seed(): disk_critical has no 'for'
PAUSE_S = 5.0
STALL_S = 2.0  # the longest one call may take while Redis is down or paused (timeouts are 0.2 s)
RECOVERY_S = 20.0
CACHE_GLOB = "clusternb:cache:*"

K_LATEST, K_SEEN, K_INTERVALS = STATE_PREFIX + "latest", STATE_PREFIX + "seen", STATE_PREFIX + "intervals"
K_DEPARTED, K_GEN = STATE_PREFIX + "departed", STATE_PREFIX + "gen"
K_ACTIVE, K_HISTORY, K_WATCHDOG = ALERTS_PREFIX + "active", ALERTS_PREFIX + "history", ALERTS_PREFIX + "watchdog"
K_KERNELS = KERNELS_KEY


def k_hist(node: str) -> str:
    return f"{STATE_PREFIX}hist:{node}"


# -- the matrix' bookkeeping ---------------------------------------------------------------------------------


@dataclass
class Cells:
    """Failed cells of one fault, collected so that one run reports them all."""

    fault: str
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def check(self, ok: bool, cell: str, detail: str = "") -> bool:
        self.checked.append(cell)
        if not ok:
            self.problems.append(f"[{self.fault} x {cell}] {detail}")
        return ok

    def raised(self, cell: str) -> None:
        """Record the exception being handled (with its traceback) as this cell's failure."""
        self.checked.append(cell)
        tb = traceback.format_exc()
        self.problems.append(f"[{self.fault} x {cell}] an exception reached the caller:\n{textwrap.indent(tb, '    ')}")

    def call(self, cell: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:
            self.raised(cell)
            return None

    def check_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        """An exception swallowed and logged by the server (a broadcast tick, a handler, a pool thread) reached a
        caller as surely as a 5xx: no ERROR record, no record with a traceback."""
        for record in caplog.records:
            if record.levelno >= logging.ERROR or record.exc_info:
                text = caplog.handler.format(record)
                self.check(False, f"log {record.name}", f"logged an error:\n{textwrap.indent(text, '    ')}")

    def assert_clean(self) -> None:
        print(f"fault {self.fault}: {len(self.checked)} checks, {len(self.problems)} failed")
        assert not self.problems, f"{len(self.problems)} failed cell(s) of fault {self.fault}:\n\n" + "\n\n".join(
            self.problems
        )


# -- Redis side: targets, seeding, planting ------------------------------------------------------------------


@dataclass
class Target:
    """The Redis a fault is played on: ``url`` is what every face is configured with, ``admin`` always works."""

    kind: str
    url: str
    server: RedisServer | None
    admin_url: str | None
    interval: float = 1.0

    def admin(self) -> redis.Redis:
        assert self.admin_url is not None
        return redis.Redis.from_url(self.admin_url, socket_timeout=5)


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """``up`` (interval 1), ``up_3600`` (one freshness bucket per hour: cache keys stay put during a test),
    ``closed`` (a loopback port nothing listens on), ``wrong_password`` (requirepass "right", URL says "wrong")."""
    kind = getattr(request, "param", "up")
    servers: list[RedisServer] = []
    try:
        if kind == "closed":
            port = free_port()
            t = Target(kind, f"redis://127.0.0.1:{port}/0", None, None)
        elif kind == "wrong_password":
            server = RedisServer(password="right").start()
            servers.append(server)
            t = Target(kind, f"redis://:wrong@127.0.0.1:{server.port}/0", server, server.url)
        else:
            server = RedisServer().start()
            servers.append(server)
            t = Target(kind, server.url, server, server.url, 3600.0 if kind == "up_3600" else 1.0)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield t
    for server in [*servers, *([t.server] if t.server is not None and t.server not in servers else [])]:
        server.stop()


@pytest.fixture
def jp_server_config(target: Target) -> Config:
    """The extension on the target's Redis, like the Python client: short timeouts, no host sampling."""
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"clusternb": True}},
            "ClusterNBApp": {"sample_host": False, "push_interval": 0.2, "rate_limit": 0.0},
            "ClusterNB": {"redis_url": target.url, "redis_socket_timeout": TIMEOUT, "interval": target.interval},
        }
    )


def seed(url: str, nodes: tuple[str, ...] = NODES) -> None:
    """Three fresh nodes and alerts made by a real engine: one firing (``ACK_ID``), one resolved (history)."""
    store = RedisStateStore(url, socket_timeout=5.0)
    link = RedisLink(url, LinkOptions(socket_timeout=5.0))
    try:
        now = time.time()
        for name in nodes:
            store.put(make_snapshot(name, time=now, interval_s=1.0))
        runtime = AlertRuntime(load_config(redis_url=url, interval=1.0), store=RedisAlertStore(link))
        full = 99 * 2**30  # of 100 GiB: disk_critical (> 97 %, no 'for') fires at once
        fired = runtime.on_sample(make_snapshot(nodes[0], time=now, interval_s=1.0, disk_used_bytes=full))
        assert fired[-1].kind == "fired" and fired[-1].alert.alert_id == ACK_ID
        runtime.on_sample(make_snapshot(nodes[1], time=now, interval_s=1.0, disk_used_bytes=full))
        resolved = runtime.on_sample(make_snapshot(nodes[1], time=now + 0.5, interval_s=1.0))
        assert "resolved" in [t.kind for t in resolved], resolved
    finally:
        store.close()
        link.close()


def put_node(url: str, name: str, **changes: Any) -> None:
    """What an agent does every interval: one put."""
    store = RedisStateStore(url, socket_timeout=5.0)
    try:
        store.put(make_snapshot(name, time=time.time(), interval_s=1.0, **changes))
    finally:
        store.close()


def make_client(target: Target) -> Client:
    settings = load_config(redis_url=target.url, redis_socket_timeout=TIMEOUT, interval=target.interval)
    return Client(settings, sample_local=False)


def wait_until(predicate: Callable[[], bool], seconds: float = RECOVERY_S, step: float = 0.1) -> bool:
    """Poll ``predicate`` (which must not raise: a face's exception is a failed cell, recorded by the caller)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


# -- the Python API face --------------------------------------------------------------------------------------


QUERIES: dict[str, Callable[[Client], Any]] = {
    "workers()": lambda c: c.workers(),
    "cluster_status()": lambda c: c.cluster_status(),
    'metrics("5m")': lambda c: c.metrics("5m"),
    "alerts()": lambda c: c.alerts(),
    "alerts(active=False)": lambda c: c.alerts(active=False),
    "kernels()": lambda c: c.kernels(),
    "cache_status()": lambda c: c.cache_status(),
}


def api_face(cells: Cells, phase: str, client: Client, stall_s: float | None = None) -> dict[str, Any]:
    """Every public query once; an exception reaching the caller is a failed cell, and so is a call that takes
    longer than ``stall_s`` (during outages)."""
    out: dict[str, Any] = {}
    for name, query in QUERIES.items():
        start = time.monotonic()
        value = cells.call(f"api {name} [{phase}]", lambda query=query: query(client))
        took = time.monotonic() - start
        if stall_s is not None:
            cells.check(took < stall_s, f"api {name} [{phase}]", f"stalled {took:.2f} s (limit {stall_s} s)")
        if value is not None:
            cells.check(isinstance(value, pd.DataFrame), f"api {name} [{phase}]", f"returned {type(value)}")
            out[name] = value
    return out


def acknowledge(cells: Cells, phase: str, client: Client, alert_id: str) -> str:
    """``acknowledge`` either succeeds ("ok") or raises a clear ValueError ("refused"); anything else fails."""
    try:
        client.acknowledge(alert_id, by="fault-matrix")
    except ValueError as exc:
        cells.check(alert_id in str(exc), f"api acknowledge [{phase}]", f"ValueError does not name the alert: {exc}")
        return "refused"
    except Exception:
        cells.raised(f"api acknowledge [{phase}]")
        return "raised"
    return "ok"


def nodes_of(frame: pd.DataFrame | None) -> set[str]:
    return set() if frame is None else {str(n) for n in frame.index}


def status_row(out: dict[str, Any]) -> pd.Series | None:
    frame = out.get("cluster_status()")
    return None if frame is None or not len(frame) else frame.iloc[0]


def check_outage_api(cells: Cells, phase: str, out: dict[str, Any], expect_nodes: set[str], state: str) -> None:
    """During an outage: answers from this process's last view, and saying so."""
    seen = nodes_of(out.get("workers()"))
    cells.check(
        seen == expect_nodes, f"api workers() [{phase}]", f"nodes {sorted(seen)}, expected {sorted(expect_nodes)}"
    )
    row = status_row(out)
    if cells.check(row is not None, f"api cluster_status() [{phase}]", "no row"):
        assert row is not None
        cells.check(
            row["redis_state"] == state,
            f"api cluster_status() [{phase}]",
            f"redis_state {row['redis_state']!r}, expected {state!r}",
        )
        cells.check(
            isinstance(row["redis_error"], str) and bool(row["redis_error"]),
            f"api cluster_status() [{phase}]",
            f"redis_error {row['redis_error']!r} does not say why",
        )
        if state == "unreachable":
            cells.check(not pd.isna(row["redis_down_since"]), f"api cluster_status() [{phase}]", "redis_down_since NaT")
    cache = out.get("cache_status()")
    if cache is not None:
        backend = cache.loc["(all)", "backend"]
        cells.check(backend == "memory", f"api cache_status() [{phase}]", f"backend {backend!r} during the outage")


# -- the REST face --------------------------------------------------------------------------------------------

#: Every GET endpoint of the extension: (label, path parts under /clusternb, query parameters).
ENDPOINTS: list[tuple[str, tuple[str, ...], dict[str, str] | None]] = [
    ("api/cluster/status", ("api", "cluster", "status"), None),
    ("api/workers", ("api", "workers"), None),
    ("api/metrics/system?since=5m", ("api", "metrics", "system"), {"since": "5m"}),
    ("api/alerts", ("api", "alerts"), None),
    ("api/alerts?active=false", ("api", "alerts"), {"active": "false"}),
    ("api/kernels", ("api", "kernels"), None),
    ("api/cache/status", ("api", "cache", "status"), None),
    ("api/openapi.json", ("api", "openapi.json"), None),
    ("metrics (prometheus)", ("metrics",), None),
    ("dashboard page", ("",), None),
]


async def rest_face(cells: Cells, phase: str, jp_fetch: Any, stall_s: float | None = None) -> dict[str, Any]:
    """GET every endpoint; a 5xx (or no answer, or one slower than ``stall_s``) is a failed cell. Returns the
    JSON bodies of the API topics."""
    bodies: dict[str, Any] = {}
    for label, parts, params in ENDPOINTS:
        cell = f"rest {label} [{phase}]"
        start = time.monotonic()
        try:
            response = await jp_fetch("clusternb", *parts, params=params, request_timeout=15)
            code, body = response.code, response.body
        except HTTPClientError as exc:
            code, body = exc.code, (exc.response.body if exc.response is not None else b"")
        except Exception:
            cells.raised(cell)
            continue
        cells.check(code < 500, cell, f"HTTP {code}: {body[:300]!r}")
        took = time.monotonic() - start
        if stall_s is not None:
            cells.check(took < stall_s, cell, f"stalled {took:.2f} s (limit {stall_s} s)")
        if code == 200 and label.startswith("api/") and label != "api/openapi.json":
            try:
                bodies[label] = orjson.loads(body)
            except orjson.JSONDecodeError:
                cells.check(False, cell, f"body is not JSON: {body[:200]!r}")
    return bodies


def rows(body: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [] if body is None else list(body.get("data", []))


# -- the WebSocket face ---------------------------------------------------------------------------------------


async def ws_face(cells: Cells, phase: str, jp_ws_fetch: Any) -> dict[str, Any]:
    """Subscribe to status and workers; the acknowledgement and both initial states must arrive, no error."""
    cell = f"ws status+workers [{phase}]"
    states: dict[str, Any] = {}
    try:
        ws = await jp_ws_fetch("clusternb", "api", "ws")
    except Exception:
        cells.raised(cell)
        return states
    try:
        ws.write_message(orjson.dumps({"subscribe": ["status", "workers"]}).decode())
        deadline = time.monotonic() + 15
        got_ack = False
        while len(states) < 2:
            left = deadline - time.monotonic()
            if not cells.check(left > 0, cell, f"no initial state within 15 s (got {sorted(states)})"):
                break
            try:
                raw = await asyncio.wait_for(ws.read_message(), left)
            except TimeoutError:
                continue
            if not cells.check(raw is not None, cell, "the server closed the socket"):
                break
            message = orjson.loads(raw)
            if not cells.check(message.get("type") != "error", cell, f"error frame: {message}"):
                break
            if message.get("type") == "subscribed":
                got_ack = True
            elif message.get("type") == "state":
                states[message["topic"]] = message["body"]
        cells.check(got_ack, cell, "no 'subscribed' acknowledgement")
    except Exception:
        cells.raised(cell)
    finally:
        ws.close()
    return states


# -- the CLI face ---------------------------------------------------------------------------------------------

CLI_COMMANDS: list[list[str]] = [["status"], ["workers"], ["alerts"], ["metrics", "--since", "5m"], ["kernels"]]

_DRIVER = r"""
import atexit, json, os, runpy, sys, tempfile, traceback
import clusternb.queries  # pandas, pyarrow, redis, traitlets: the imports every CLI process pays for
import clusternb.server.payload  # noqa
out = sys.stdout
for line in sys.stdin:
    jobs, kids = json.loads(line), []
    for job in jobs:
        o, e = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.dup2(o.fileno(), 1)
                os.dup2(e.fileno(), 2)
                os.environ.update(job["env"])
                sys.argv = ["clusternb", *job["argv"]]
                sys.modules.pop("clusternb.cli", None)
                try:
                    runpy.run_module("clusternb.cli", run_name="__main__", alter_sys=True)
                    code = 0
                except SystemExit as exc:  # what the interpreter does with it
                    if exc.code is None:
                        code = 0
                    elif isinstance(exc.code, int):
                        code = exc.code
                    else:
                        print(exc.code, file=sys.stderr)
                        code = 1
                except BaseException:
                    traceback.print_exc()
                    code = 1
                try:
                    atexit._run_exitfuncs()
                except BaseException:
                    traceback.print_exc()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        kids.append((pid, o, e))
    results = []
    for pid, o, e in kids:
        _, status = os.waitpid(pid, 0)
        o.seek(0)
        e.seek(0)
        results.append({"rc": os.waitstatus_to_exitcode(status), "stdout": o.read().decode("utf-8", "replace"),
                        "stderr": e.read().decode("utf-8", "replace")})
        o.close()
        e.close()
    out.write(json.dumps(results) + "\n")
    out.flush()
"""


class WarmCLI:
    """Runs ``clusternb.cli`` as ``__main__`` in children forked from one process that imported its dependencies."""

    def __init__(self) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERNB_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env, text=True
        )
        self._lock = threading.Lock()

    def run(self, commands: list[list[str]], env: dict[str, str]) -> list[dict[str, Any]]:
        jobs = [{"argv": argv, "env": env} for argv in commands]
        with self._lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps(jobs) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        assert line, "the CLI driver died"
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        stop_process(self.proc)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def warm_cli() -> Iterator[WarmCLI]:
    cli = WarmCLI()
    yield cli
    cli.close()


@dataclass
class Faces:
    """The faces besides the Python API, as the tests drive them: REST, the WebSocket, the server app, the CLI."""

    fetch: Any
    ws_fetch: Any
    serverapp: Any
    cli: WarmCLI


@pytest.fixture
def faces(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, warm_cli: WarmCLI) -> Faces:
    return Faces(jp_fetch, jp_ws_fetch, jp_serverapp, warm_cli)


def real_cli(commands: list[list[str]], env: dict[str, str]) -> list[dict[str, Any]]:
    """``python -m clusternb.cli`` for real, the commands side by side."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERNB_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "clusternb.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**base, **env},
            text=True,
        )
        for argv in commands
    ]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=90)
        out.append({"rc": proc.returncode, "stdout": stdout, "stderr": stderr})
    return out


def cli_env(target: Target) -> dict[str, str]:
    return {"CLUSTERNB_REDIS_SOCKET_TIMEOUT": str(TIMEOUT), "CLUSTERNB_INTERVAL": str(target.interval)}


def check_cli(
    cells: Cells, phase: str, target: Target, results: list[dict[str, Any]], expect_rc: int, commands: list[list[str]]
) -> dict[str, dict[str, Any]]:
    """No traceback ever; exit ``expect_rc``; with 3, exactly one stderr line."""
    by_name = {}
    for argv, result in zip(commands, results, strict=True):
        cell = f"cli {' '.join(argv)} [{phase}]"
        by_name[argv[0]] = result
        stderr = result["stderr"]
        cells.check("Traceback" not in stderr, cell, f"traceback on stderr:\n{textwrap.indent(stderr, '    ')}")
        cells.check(
            result["rc"] == expect_rc,
            cell,
            f"exit status {result['rc']}, expected {expect_rc}; stderr: {stderr.strip()[:600]!r}",
        )
        if expect_rc == 3:
            lines = stderr.strip().splitlines()
            cells.check(len(lines) == 1, cell, f"{len(lines)} stderr lines, expected exactly one: {stderr!r}")
        cells.check(":wrong@" not in stderr + result["stdout"], cell, "the password is shown")
    return by_name


async def cli_face(
    cells: Cells,
    phase: str,
    target: Target,
    runner: WarmCLI | None,
    expect_rc: int,
    commands: list[list[str]] = CLI_COMMANDS,
) -> dict[str, dict[str, Any]]:
    """The CLI commands against the target (in a thread: the server's loop keeps serving meanwhile)."""
    argvs = [[*argv, "--redis", target.url] for argv in commands]
    env = cli_env(target)
    try:
        if runner is None:
            results = await asyncio.to_thread(real_cli, argvs, env)
        else:
            results = await asyncio.to_thread(runner.run, argvs, env)
    except Exception:
        cells.raised(f"cli [{phase}]")
        return {}
    return check_cli(cells, phase, target, results, expect_rc, commands)


# -- recovery -------------------------------------------------------------------------------------------------


def back_on_redis(cells: Cells, face: str, client: Client) -> bool:
    """One poll of the recovery: a query (it goes to Redis once the backoff allows), then where answers come from."""
    if cells.call(f"{face} workers() [recovering]", client.workers) is None:
        return False
    shared = cells.call(f"{face} shared_state() [recovering]", client.shared_state)
    cache = cells.call(f"{face} cache_status() [recovering]", client.cache_status)
    if shared is None or cache is None:
        return False
    return bool(shared.redis_state == "connected" and cache.loc["(all)", "backend"] == "redis")


async def check_recovery(
    cells: Cells,
    target: Target,
    client: Client,
    faces: Faces,
) -> None:
    """After the fault: the same client and server are back on Redis (no restart), and a new agent record shows
    on every face."""
    came_back = await asyncio.to_thread(wait_until, lambda: back_on_redis(cells, "api", client))
    cells.check(came_back, "api recovery", f"not back on Redis within {RECOVERY_S} s: {client.shared_state()}")
    server_client = extension(faces.serverapp).client
    came_back = await asyncio.to_thread(wait_until, lambda: back_on_redis(cells, "server client", server_client))
    cells.check(came_back, "rest recovery", f"server not back on Redis: {server_client.shared_state()}")
    await asyncio.to_thread(put_node, target.admin_url or target.url, NEW_NODE)
    out = await asyncio.to_thread(api_face, cells, "recovered", client)
    seen = nodes_of(out.get("workers()"))
    cells.check(NEW_NODE in seen, "api workers() [recovered]", f"{NEW_NODE} not shown: {sorted(seen)}")
    row = status_row(out)
    cells.check(
        row is not None and row["redis_state"] == "connected",
        "api cluster_status() [recovered]",
        f"redis_state {None if row is None else row['redis_state']!r}",
    )
    bodies = await rest_face(cells, "recovered", faces.fetch)
    rest_nodes = {r["node"] for r in rows(bodies.get("api/workers"))}
    cells.check(NEW_NODE in rest_nodes, "rest api/workers [recovered]", f"{NEW_NODE} not shown: {sorted(rest_nodes)}")
    cache_body = bodies.get("api/cache/status") or {}
    cells.check(
        cache_body.get("backend") == "redis",
        "rest api/cache/status [recovered]",
        f"backend {cache_body.get('backend')!r}",
    )
    states = await ws_face(cells, "recovered", faces.ws_fetch)
    ws_nodes = {r["node"] for r in rows(states.get("workers"))}
    cells.check(NEW_NODE in ws_nodes, "ws workers [recovered]", f"{NEW_NODE} not shown: {sorted(ws_nodes)}")
    results = await cli_face(cells, "recovered", target, faces.cli, 0, [["workers"]])
    stdout = results.get("workers", {}).get("stdout", "")
    cells.check(NEW_NODE in stdout, "cli workers [recovered]", f"{NEW_NODE} not in the table: {stdout[:400]!r}")


def ack_landed(cells: Cells, client: Client, target: Target) -> bool:
    """A store call (it writes what was queued), then: is the acknowledgement in Redis?"""
    cells.call("api alerts() [flushing the queue]", client.alerts)
    return acknowledged_in_redis(target, ACK_ID)


def acknowledged_in_redis(target: Target, alert_id: str) -> bool:
    raw = target.admin().hget(K_ACTIVE, alert_id)
    return raw is not None and bool(orjson.loads(raw).get("acknowledged"))


# == faults 1 and 2: a Redis that was up goes away, then comes back ===========================================


@contextlib.contextmanager
def fault_row(
    name: str, target: Target, caplog: pytest.LogCaptureFixture, seeded: bool = True
) -> Iterator[tuple[Cells, Client]]:
    """One fault's row of the matrix: seeded data and a client; at the end no error logged and no failed cell."""
    cells = Cells(name)
    if seeded:
        seed(target.url)
    client = make_client(target)
    try:
        yield cells, client
    finally:
        client.close()
    cells.check_logs(caplog)
    cells.assert_clean()


async def check_queued_ack(cells: Cells, client: Client, target: Target, how: str) -> None:
    """An acknowledgement queued during the outage (``how == "ok"``) reaches Redis once it is back."""
    if how == "ok":
        landed = await asyncio.to_thread(wait_until, lambda: ack_landed(cells, client, target), 5)
        cells.check(landed, "api acknowledge [after recovery]", "the queued acknowledgement never reached Redis")


async def outage_row(cells: Cells, target: Target, client: Client, faces: Faces, phase: str) -> str:
    """Every face during an outage of a Redis this process had read before; returns how acknowledge went."""
    cli_task = asyncio.ensure_future(cli_face(cells, phase, target, faces.cli, 3))  # fresh processes: never reached
    out = await asyncio.to_thread(api_face, cells, phase, client, STALL_S)
    check_outage_api(cells, phase, out, set(NODES), "unreachable")
    ids = set(out["alerts()"]["alert_id"]) if "alerts()" in out else set()
    cells.check(ACK_ID in ids, f"api alerts() [{phase}]", f"last view lost the alert: {sorted(ids)}")
    how = await asyncio.to_thread(acknowledge, cells, phase, client, ACK_ID)
    cells.check(
        how == "ok", f"api acknowledge [{phase}]", f"{how}: alerts() shows the alert, acknowledging it must queue"
    )
    if how == "ok":
        after = cells.call(f"api alerts() after acknowledge [{phase}]", client.alerts)
        if after is not None and ACK_ID in set(after["alert_id"]):
            acked = bool(after.set_index("alert_id").loc[ACK_ID, "acknowledged"])
            cells.check(acked, f"api acknowledge [{phase}]", "the queued acknowledgement is not in this process's view")
    bodies = await rest_face(cells, phase, faces.fetch, STALL_S)
    rest_nodes = {r["node"] for r in rows(bodies.get("api/workers"))}
    cells.check(rest_nodes == set(NODES), f"rest api/workers [{phase}]", f"nodes {sorted(rest_nodes)}")
    rest_ids = {r["alert_id"] for r in rows(bodies.get("api/alerts"))}
    cells.check(ACK_ID in rest_ids, f"rest api/alerts [{phase}]", f"last view lost the alert: {sorted(rest_ids)}")
    status = rows(bodies.get("api/cluster/status"))
    cells.check(
        bool(status) and status[0].get("redis_state") == "unreachable",
        f"rest api/cluster/status [{phase}]",
        f"redis_state {status[0].get('redis_state') if status else None!r}",
    )
    states = await ws_face(cells, phase, faces.ws_fetch)
    ws_nodes = {r["node"] for r in rows(states.get("workers"))}
    cells.check(ws_nodes == set(NODES), f"ws workers [{phase}]", f"nodes {sorted(ws_nodes)}")
    await cli_task
    return how


async def healthy_row(cells: Cells, client: Client, jp_fetch: Any) -> None:
    """Before the fault: the client and the server have read the cluster once (their 'last view').

    Both reads happen in one freshness bucket (the start of a second is awaited first), so the server answers
    from the Redis cache the client just filled: the common case of a Jupyter server beside busy kernels.
    """
    await asyncio.sleep(1.0 - time.time() % 1.0 + 0.01)
    out = await asyncio.to_thread(api_face, cells, "before", client)
    cells.check(nodes_of(out.get("workers()")) == set(NODES), "api workers() [before]", "seeded nodes not shown")
    bodies = await rest_face(cells, "before", jp_fetch)
    cells.check({r["node"] for r in rows(bodies.get("api/workers"))} == set(NODES), "rest api/workers [before]", "")
    cells.check(ACK_ID in {r["alert_id"] for r in rows(bodies.get("api/alerts"))}, "rest api/alerts [before]", "")


@on_server_loop
async def test_fault_1_sigkill_then_restart_on_the_same_port(
    target: Target, faces: Faces, caplog: pytest.LogCaptureFixture
) -> None:
    with fault_row("1 SIGKILL + restart", target, caplog) as (cells, client):
        await healthy_row(cells, client, faces.fetch)
        alert_record = target.admin().hget(K_ACTIVE, ACK_ID)
        assert target.server is not None
        target.server.kill()
        how = await outage_row(cells, target, client, faces, "killed")
        target.server.start()  # same port; no persistence: an empty Redis
        # A restarted Redis without persistence forgot the alert; put it back as an AOF would have (before any
        # client call), so the queued acknowledgement finds the same alert, still active.
        target.admin().hset(K_ACTIVE, ACK_ID, alert_record)
        await check_recovery(cells, target, client, faces)
        await check_queued_ack(cells, client, target, how)


@on_server_loop
async def test_fault_2_sigstop_for_5_s(target: Target, faces: Faces, caplog: pytest.LogCaptureFixture) -> None:
    assert target.server is not None
    with fault_row("2 SIGSTOP 5 s", target, caplog) as (cells, client):
        await healthy_row(cells, client, faces.fetch)
        target.server.pause()
        paused_at = time.monotonic()
        try:
            how = await outage_row(cells, target, client, faces, "paused")
            # At least 5 s, and until every face has been seen against the paused Redis.
            await asyncio.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused_at)))
        finally:
            target.server.resume()
        await check_recovery(cells, target, client, faces)
        await check_queued_ack(cells, client, target, how)


# == faults 3 and 4: Redis never reached =======================================================================


async def never_reached_row(cells: Cells, target: Target, client: Client, faces: Faces, phase: str) -> None:
    cli_task = asyncio.ensure_future(cli_face(cells, phase, target, None, 3))  # real `python -m clusternb.cli`
    out = await asyncio.to_thread(api_face, cells, phase, client, STALL_S)
    check_outage_api(cells, phase, out, set(), "never reached")
    await asyncio.to_thread(acknowledge, cells, phase, client, ACK_ID)  # nothing known: a clear ValueError is fine
    bodies = await rest_face(cells, phase, faces.fetch, STALL_S)
    status = rows(bodies.get("api/cluster/status"))
    cells.check(
        bool(status) and status[0].get("redis_state") == "never reached",
        f"rest api/cluster/status [{phase}]",
        f"redis_state {status[0].get('redis_state') if status else None!r}",
    )
    await ws_face(cells, phase, faces.ws_fetch)
    results = await cli_task
    status_out = results.get("status", {}).get("stdout", "")
    cells.check("never reached" in status_out, f"cli status [{phase}]", f"does not say so: {status_out[-300:]!r}")


@pytest.mark.parametrize("target", ["closed"], indirect=True)
@on_server_loop
async def test_fault_3_unreachable_from_the_start(
    target: Target, faces: Faces, caplog: pytest.LogCaptureFixture
) -> None:
    with fault_row("3 unreachable from the start", target, caplog, seeded=False) as (cells, client):
        await never_reached_row(cells, target, client, faces, "closed port")
        server = RedisServer()
        server.port = int(target.url.rsplit(":", 1)[1].split("/")[0])  # the fault ends: Redis appears there
        target.server, target.admin_url = server.start(), server.url
        seed(target.url)
        await check_recovery(cells, target, client, faces)
        out = await asyncio.to_thread(api_face, cells, "seeded after", client)
        cells.check(set(NODES) <= nodes_of(out.get("workers()")), "api workers() [seeded after]", "")


@pytest.mark.parametrize("target", ["wrong_password"], indirect=True)
@on_server_loop
async def test_fault_4_wrong_password(target: Target, faces: Faces, caplog: pytest.LogCaptureFixture) -> None:
    cells = Cells("4 wrong password")
    assert target.admin_url is not None
    seed(target.admin_url)
    client = make_client(target)
    try:
        await never_reached_row(cells, target, client, faces, "wrong password")
        row = status_row({"cluster_status()": client.cluster_status()})
        error = "" if row is None else str(row["redis_error"])
        cells.check(
            "password" in error and ":wrong@" not in error,
            "api cluster_status() [wrong password]",
            f"redis_error should name the refused password and never show it: {error!r}",
        )
        # The fault ends: the operator sets the password the clients were given (no client restarts).
        target.admin().config_set("requirepass", "wrong")
        target.admin_url = target.url
        await check_recovery(cells, target, client, faces)
        out = await asyncio.to_thread(api_face, cells, "after", client)
        cells.check(set(NODES) <= nodes_of(out.get("workers()")), "api workers() [after]", "seeded nodes not shown")
    finally:
        client.close()
    cells.check_logs(caplog)
    cells.assert_clean()


# == fault 5: bad records in every key clusternb reads =========================================================


def _variant(base: dict[str, Any], node: str, **changes: Any) -> bytes:
    record = dict(base, node=node, host=node)
    record.update(changes)
    return orjson.dumps(record)


def bad_latest(now: float) -> dict[str, bytes]:
    """field (= the node the record claims) -> a record every reader must reject."""
    good = make_snapshot("x", time=now, interval_s=1.0).to_dict()
    huge = _variant(good, "bad-mem-2p70", mem_total_bytes=123456789).replace(
        b'"mem_total_bytes":123456789', b'"mem_total_bytes":' + str(2**70).encode()
    )
    assert str(2**70).encode() in huge
    return {
        "bad-garbage": b"\x00\xff\xfe\x80 not a record at all",
        "bad-pickle": pickle.dumps({"node": "bad-pickle", "cpu_percent": 50.0}, protocol=pickle.HIGHEST_PROTOCOL),
        "bad-schema": _variant(good, "bad-schema", schema=SCHEMA_VERSION + 1),
        "bad-mem-2p70": huge,
        "bad-cpu-1e308": _variant(good, "bad-cpu-1e308", cpu_percent=1e308),
        "bad-mem-negative": _variant(good, "bad-mem-negative", mem_used_bytes=-1),
        "bad-cpu-count": _variant(good, "bad-cpu-count", cpu_count=-4),
        "bad-interval": _variant(good, "bad-interval", interval_s=-5),
        "bad-time-1e308": _variant(good, "bad-time-1e308", time=1e308),
        "bad-time-negative": _variant(good, "bad-time-negative", time=-1e10),
        "bad-time-year-3000": _variant(good, "bad-time-year-3000", time=32_503_680_000.0),
        "bad-used-over-total": _variant(good, "bad-used-over-total", mem_used_bytes=good["mem_total_bytes"] + 1),
    }


def bad_history(now: float) -> list[bytes]:
    good = make_snapshot(NODES[0], time=now, interval_s=1.0).to_dict()
    return [
        b"\x00garbage in the history",
        pickle.dumps([1, 2, 3]),
        _variant(good, NODES[0], cpu_percent=1e308),
        _variant(good, NODES[0], mem_used_bytes=-5),
        _variant(good, NODES[0], schema=SCHEMA_VERSION + 1),
    ]


def bad_alerts(admin: redis.Redis, now: float) -> tuple[dict[str, bytes], list[bytes]]:
    """(active fields -> records, history records) every reader must reject, from the real seeded alert."""
    real = orjson.loads(admin.hget(K_ACTIVE, ACK_ID))

    def alert(node: str, **changes: Any) -> bytes:
        record = dict(real, node=node, alert_id=f"{real['rule']}:{node}")
        record.update(changes)
        return orjson.dumps(record)

    active = {
        "garbage": b"\xff\x00 not an alert",
        f"{real['rule']}:bad-started-1e300": alert("bad-started-1e300", started_at=1e300, fired_at=1e300),
        f"{real['rule']}:bad-state": alert("bad-state", state="exploded"),
        f"{real['rule']}:bad-schema": alert("bad-schema", schema=99),
    }
    ended = dict(real, state="resolved", ended_at=now)
    history = [
        b"\x80\x04 pickled? no: garbage",
        orjson.dumps(dict(ended, node="bad-h-1e300", alert_id=f"{real['rule']}:bad-h-1e300", started_at=1e300)),
        orjson.dumps(dict(ended, node="bad-h-state", alert_id=f"{real['rule']}:bad-h-state", state="vanished")),
    ]
    return active, history


@dataclass
class Planted:
    latest: dict[str, bytes]
    history: list[bytes]
    active: dict[str, bytes]
    alert_history: list[bytes]
    kernels: dict[str, bytes]


def bad_kernel_reports(now: float) -> dict[str, bytes]:
    """Kernel reports a server never writes: garbage, a pickle, absurd memory, a date a day ahead, a foreign shape."""
    absurd = msgspec.json.decode(encode_report(make_report(NODES[0], time=now)))
    absurd["kernels"][0]["rss_bytes"] = 2**62
    return {
        "bad-garbage": b"\xff\xfe not json",
        "bad-pickle": pickle.dumps({"node": NODES[0]}),
        "bad-absurd": msgspec.json.encode(absurd),
        "bad-future": encode_report(make_report(NODES[1], time=now + 86_400)),
        "bad-shape": b'{"node": "<img src=x onerror=alert(1)>", "kernels": "all of them"}',
    }


def plant_bad_records(target: Target, gen_text: bool) -> Planted:
    """Bad records in every key clusternb reads, beside the good ones; a new generation so no cache hides them."""
    admin = target.admin()
    now = time.time()
    latest, history = bad_latest(now), bad_history(now)
    active, alert_history = bad_alerts(admin, now)
    kernels = bad_kernel_reports(now)
    pipe = admin.pipeline(transaction=False)
    pipe.hset(K_KERNELS, mapping=kernels)
    pipe.hset(K_LATEST, mapping=latest)
    pipe.zadd(k_hist(NODES[0]), {record: now - 1 for record in history})
    pipe.zadd(K_SEEN, {"ghost-seen-1e308": 1e308, "ghost-interval-text": now})
    pipe.hset(K_INTERVALS, mapping={"ghost-interval-text": "every now and then"})
    pipe.hset(K_DEPARTED, mapping={"ghost-departed-text": "yesterday", "ghost-departed-1e308": "1e308"})
    pipe.hset(K_ACTIVE, mapping=active)
    pipe.lpush(K_HISTORY, *alert_history)
    if gen_text:
        pipe.set(K_GEN, "not a number")
    else:
        pipe.set(K_GEN, int(time.time() * 1e6))  # a writer's new generation: every reader reads again
    pipe.execute()
    return Planted(latest, history, active, alert_history, kernels)


def check_no_absurd_numbers(cells: Cells, phase: str, out: dict[str, Any]) -> None:
    workers = out.get("workers()")
    if workers is not None:
        seen = nodes_of(workers)
        cells.check(
            seen == set(NODES), f"api workers() [{phase}]", f"expected exactly the good nodes, got {sorted(seen)}"
        )
        for column, low, high in [
            ("cpu_percent", 0, 100),
            ("mem_used_percent", 0, 100),
            ("cpu_count", 0, 2**20),
            ("mem_total_bytes", 0, BYTES_MAX),
            ("mem_used_bytes", 0, BYTES_MAX),
        ]:
            values = workers[column].astype("float64")
            cells.check(
                bool(((values >= low) & (values <= high)).all()),
                f"api workers() [{phase}]",
                f"{column} out of [{low}, {high}]: {values.tolist()}",
            )
        stamps = workers["last_seen"]
        cells.check(
            bool((stamps.dt.year < 2100).all() and (stamps.dt.year > 2000).all()),
            f"api workers() [{phase}]",
            f"last_seen absurd: {stamps.tolist()}",
        )
    metrics = out.get('metrics("5m")')
    if metrics is not None:
        nodes = set(metrics["node"].astype(str))
        cells.check(nodes <= set(NODES), f'api metrics("5m") [{phase}]', f"bad nodes in the series: {sorted(nodes)}")
        cpu = metrics["cpu_percent"].astype("float64")
        cells.check(bool(((cpu >= 0) & (cpu <= 100)).all()), f'api metrics("5m") [{phase}]', f"cpu {cpu.max()}")
    for name in ("alerts()", "alerts(active=False)"):
        alerts = out.get(name)
        if alerts is None:
            continue
        bad = [a for a in alerts["alert_id"].astype(str) if a.split(":", 1)[-1] not in NODES]
        cells.check(not bad, f"api {name} [{phase}]", f"bad alerts shown: {bad}")
        started = alerts["started_at"]
        cells.check(bool((started.dt.year < 2100).all()), f"api {name} [{phase}]", f"started_at {started.tolist()}")
        cells.check(set(alerts["state"].astype(str)) <= {"pending", "firing", "resolved"}, f"api {name} [{phase}]", "")


def check_rejections_counted(cells: Cells, phase: str, row: pd.Series | None) -> None:
    if cells.check(row is not None, f"api cluster_status() [{phase}]", "no row"):
        assert row is not None
        cells.check(
            int(row["records_rejected"]) > 0,
            f"api cluster_status() [{phase}]",
            f"records_rejected {row['records_rejected']}",
        )
        cells.check(
            isinstance(row["rejected"], str) and bool(row["rejected"]),
            f"api cluster_status() [{phase}]",
            f"rejected {row['rejected']!r}",
        )


def check_every_record_counted(cells: Cells, client: Client, planted: Planted) -> None:
    """Each planted record is counted under its kind (JSON ones under the node they claim)."""
    counts = client.rejections.counts()
    per_kind: dict[str, int] = {}
    for (kind, _, _), n in counts.items():
        per_kind[kind] = per_kind.get(kind, 0) + n
    latest_nodes = {node for (kind, node, _) in counts if kind == "latest"}
    named = {f for f in planted.latest if f not in ("bad-garbage", "bad-pickle")}
    cells.check(
        named <= latest_nodes and "(unknown)" in latest_nodes,
        "rejections [latest]",
        f"not counted: {sorted(named - latest_nodes)}; counted nodes {sorted(latest_nodes)}",
    )
    expected = {
        "latest": len(planted.latest),
        "history": len(planted.history),
        "alerts": len(planted.active),
        "alert history": len(planted.alert_history),
        "departed": 2,
        "generation": 1,
        "registry": 2,
        "kernels": len(planted.kernels),
    }
    short = {k: (per_kind.get(k, 0), n) for k, n in expected.items() if per_kind.get(k, 0) < n}
    cells.check(not short, "rejections [every kind]", f"kind: (counted, planted) {short}; all counts {per_kind}")


def remaining_bad(target: Target, planted: Planted) -> dict[str, list[str]]:
    """Planted bad records still in Redis, per key."""
    admin = target.admin()
    left: dict[str, list[str]] = {}
    fields = [f for f, v in planted.latest.items() if admin.hget(K_LATEST, f) == v]
    if fields:
        left["latest"] = fields
    hist = set(admin.zrange(k_hist(NODES[0]), 0, -1))
    if hist & set(planted.history):
        left[f"hist:{NODES[0]}"] = [repr(r[:40]) for r in hist & set(planted.history)]
    score = admin.zscore(K_SEEN, "ghost-seen-1e308")
    if score is not None and score > TIME_MAX:
        left["seen"] = ["ghost-seen-1e308 (score 1e308)"]
    if admin.hget(K_INTERVALS, "ghost-interval-text") is not None:
        left["intervals"] = ["ghost-interval-text ('every now and then')"]
    departed = [f for f in ("ghost-departed-text", "ghost-departed-1e308") if admin.hget(K_DEPARTED, f) is not None]
    if departed:
        left["departed"] = departed
    active = [f for f, v in planted.active.items() if admin.hget(K_ACTIVE, f) == v]
    if active:
        left["alerts active"] = active
    history = set(admin.lrange(K_HISTORY, 0, -1)) & set(planted.alert_history)
    if history:
        left["alerts history"] = [repr(r[:40]) for r in history]
    kernels = [f for f, v in planted.kernels.items() if admin.hget(K_KERNELS, f) == v]
    if kernels:
        left["kernels"] = kernels
    return left


def test_fault_5_bad_records_python_api_and_pruning(target: Target, caplog: pytest.LogCaptureFixture) -> None:
    with fault_row("5 bad records", target, caplog) as (cells, client):
        planted = plant_bad_records(target, gen_text=True)
        out = api_face(cells, "bad records", client)
        out["alerts()"] = cells.call("api alerts() [again]", client.alerts)  # after the pruning of the first read
        check_no_absurd_numbers(cells, "bad records", out)
        how = acknowledge(cells, "bad records", client, ACK_ID)
        cells.check(how == "ok", "api acknowledge [bad records]", f"{how}: the good alert could not be acknowledged")
        cells.call("store liveness()", client.store.liveness)  # the watchdog's reader of seen/intervals/departed
        row = status_row({"cluster_status()": cells.call("api cluster_status() [counted]", client.cluster_status)})
        check_rejections_counted(cells, "bad records", row)
        check_every_record_counted(cells, client, planted)
        for key, records in remaining_bad(target, planted).items():
            cells.check(
                False, f"pruning {key} [after the reads]", f"still in Redis after every reader read it: {records}"
            )
        # The next agent put repairs the rest: the generation, the registry's ghost, a departure it cannot parse.
        put_node(target.url, NODES[0])
        admin = target.admin()
        gen = admin.get(K_GEN)
        cells.check(gen is not None and gen.isdigit(), "repair gen [after a put]", f"gen {gen!r}")
        for key, records in remaining_bad(target, planted).items():
            cells.check(
                False, f"pruning {key} [after a put]", f"still in Redis after the next agent put too: {records}"
            )
        out = api_face(cells, "after a put", client)
        check_no_absurd_numbers(cells, "after a put", out)


@on_server_loop
async def test_fault_5_bad_records_rest_ws_cli(target: Target, faces: Faces, caplog: pytest.LogCaptureFixture) -> None:
    cells = Cells("5 bad records")
    seed(target.url)
    await asyncio.to_thread(plant_bad_records, target, False)
    bodies = await rest_face(cells, "bad records", faces.fetch)
    workers = rows(bodies.get("api/workers"))
    cells.check(
        {r["node"] for r in workers} == set(NODES),
        "rest api/workers [bad records]",
        f"nodes {sorted(r['node'] for r in workers)}",
    )
    cells.check(
        all(0 <= (r["cpu_percent"] or 0) <= 100 for r in workers),
        "rest api/workers [bad records]",
        f"cpu {[r['cpu_percent'] for r in workers]}",
    )
    status = rows(bodies.get("api/cluster/status"))
    cells.check(
        bool(status) and (status[0].get("records_rejected") or 0) > 0,
        "rest api/cluster/status [bad records]",
        f"records_rejected {status[0].get('records_rejected') if status else None}",
    )
    for label in ("api/alerts", "api/alerts?active=false"):
        ids = [r["alert_id"] for r in rows(bodies.get(label))]
        cells.check(all(i.split(":", 1)[-1] in NODES for i in ids), f"rest {label} [bad records]", f"ids {ids}")
    await asyncio.to_thread(plant_bad_records, target, False)
    states = await ws_face(cells, "bad records", faces.ws_fetch)
    ws_nodes = {r["node"] for r in rows(states.get("workers"))}
    cells.check(ws_nodes == set(NODES), "ws workers [bad records]", f"nodes {sorted(ws_nodes)}")
    # `status` alone first: the first process to read the planted records rejects (and prunes) them.
    await asyncio.to_thread(plant_bad_records, target, False)
    results = await cli_face(cells, "bad records", target, faces.cli, 0, [["status"]])
    status_out = results.get("status", {}).get("stdout", "")
    cells.check("rejected" in status_out, "cli status [bad records]", f"no 'rejected' line: {status_out[-400:]!r}")
    await asyncio.to_thread(plant_bad_records, target, False)
    results = await cli_face(cells, "bad records", target, faces.cli, 0, CLI_COMMANDS[1:])
    table = results.get("workers", {}).get("stdout", "")
    cells.check(all(n in table for n in NODES) and "bad-" not in table, "cli workers [bad records]", table[:600])
    cells.check_logs(caplog)
    cells.assert_clean()


# == fault 6: a forged cache entry under the key the next query uses ============================================

FORGED_PAYLOAD = b"ARROW1? no. Just bytes that hash correctly and decode as nothing."


def forge_cache_entries(target: Target) -> list[bytes]:
    """Overwrite every cache entry with a valid header (same kind and time) and a correct BLAKE2b-16 of a payload
    that is not Arrow; returns the keys forged."""
    admin = target.admin()
    forged = []
    digest = hashlib.blake2b(FORGED_PAYLOAD, digest_size=16).digest()
    for key in admin.scan_iter(match=CACHE_GLOB, count=1000):
        if key.endswith(b":lease") or admin.type(key) != b"string":
            continue
        raw = admin.get(key)
        if raw is None or raw[:3] != MAGIC:
            continue
        kind, created = raw[4:5], struct.unpack(">d", raw[5:13])[0]
        forged_bytes = MAGIC + bytes([FORMAT_VERSION]) + kind + struct.pack(">d", created) + digest + FORGED_PAYLOAD
        entry_from_bytes(forged_bytes)  # the header and hash pass: only decoding the payload can tell
        admin.set(key, forged_bytes, keepttl=True)
        forged.append(key)
    return forged


def cache_errors(frame: pd.DataFrame | None) -> int:
    return -1 if frame is None else int(frame.loc["(all)", "errors"])


def all_healed(target: Target, keys: list[bytes]) -> list[bytes]:
    """Forged keys that still hold the forged bytes (a healed key holds a decodable entry, or expired)."""
    admin = target.admin()
    return [k for k in keys if (raw := admin.get(k)) is not None and raw.endswith(FORGED_PAYLOAD)]


@pytest.mark.parametrize("target", ["up_3600"], indirect=True)
@on_server_loop
async def test_fault_6_forged_cache_entry(target: Target, faces: Faces, caplog: pytest.LogCaptureFixture) -> None:
    with fault_row("6 forged cache entry", target, caplog) as (cells, client):
        first = await asyncio.to_thread(api_face, cells, "first", client)
        keys = await asyncio.to_thread(forge_cache_entries, target)
        assert keys, "no cache entry in Redis to forge"
        expected_key = client._key("workers", ()).encode()
        assert expected_key in keys, f"the next workers() key {expected_key!r} is not among {keys}"
        errors_before = cache_errors(first.get("cache_status()"))
        out = await asyncio.to_thread(api_face, cells, "forged", client)
        cells.check(
            nodes_of(out.get("workers()")) == set(NODES),
            "api workers() [forged]",
            f"nodes {sorted(nodes_of(out.get('workers()')))}",
        )
        for name in ("workers()", 'metrics("5m")', "alerts()", "alerts(active=False)"):
            a, b = first.get(name), out.get(name)
            if a is not None and b is not None:
                same = list(a.columns) == list(b.columns) and len(a) == len(b) and list(a.index) == list(b.index)
                cells.check(same, f"api {name} [forged]", f"answer differs from before the forgery:\n{b}\nvs\n{a}")
        row = status_row(out)
        cells.check(row is not None and int(row["nodes_total"]) == len(NODES), "api cluster_status() [forged]", "")
        errors_after = cache_errors(out.get("cache_status()"))
        cells.check(
            errors_after > errors_before,
            "api cache_status() [forged]",
            f"errors {errors_before} -> {errors_after}: the forged entries were not counted",
        )
        cells.check(not all_healed(target, keys), "cache [healed after api]", "a forged entry is still in Redis")
        await asyncio.to_thread(forge_cache_entries, target)
        how = await asyncio.to_thread(acknowledge, cells, "forged", client, ACK_ID)
        cells.check(how == "ok", "api acknowledge [forged]", how)

        keys = await asyncio.to_thread(forge_cache_entries, target)
        server_errors = cache_errors(extension(faces.serverapp).client.cache_status())
        bodies = await rest_face(cells, "forged", faces.fetch)
        cells.check({r["node"] for r in rows(bodies.get("api/workers"))} == set(NODES), "rest api/workers [forged]", "")
        after = cache_errors(extension(faces.serverapp).client.cache_status())
        cells.check(after > server_errors, "rest api/cache/status [forged]", f"errors {server_errors} -> {after}")

        await asyncio.to_thread(forge_cache_entries, target)
        states = await ws_face(cells, "forged", faces.ws_fetch)
        cells.check({r["node"] for r in rows(states.get("workers"))} == set(NODES), "ws workers [forged]", "")

        keys = await asyncio.to_thread(forge_cache_entries, target)
        results = await cli_face(cells, "forged", target, faces.cli, 0)
        table = results.get("workers", {}).get("stdout", "")
        cells.check(all(n in table for n in NODES), "cli workers [forged]", table[:600])


# == fault 7: keys of the wrong Redis type under clusternb's names ==============================================

WRONG_TYPES: dict[str, Callable[[Any, str], Any]] = {
    "list": lambda p, k: p.rpush(k, "not", "ours"),
    "string": lambda p, k: p.set(k, "not ours"),
    "hash": lambda p, k: p.hset(k, mapping={"not": "ours"}),
    "set": lambda p, k: p.sadd(k, "not ours"),
}
#: Each state/alert key and the type it is planted as (never its own).
WRONG_STATE_KEYS: dict[str, str] = {
    K_LATEST: "list",
    K_SEEN: "string",
    K_INTERVALS: "list",
    K_DEPARTED: "string",
    K_GEN: "hash",
    **{k_hist(n): "string" for n in NODES},
    K_ACTIVE: "string",
    K_HISTORY: "hash",
    K_WATCHDOG: "list",
    K_KERNELS: "list",
}
RIGHT_TYPES = {
    K_LATEST: b"hash",
    K_SEEN: b"zset",
    K_INTERVALS: b"hash",
    K_DEPARTED: b"hash",
    K_GEN: b"string",
    **{k_hist(n): b"zset" for n in NODES},
    K_ACTIVE: b"hash",
    K_HISTORY: b"list",
    K_KERNELS: b"hash",
}


def plant_wrong_types(target: Target) -> int:
    """Every state and alert key as another type, and every cache entry as a hash; returns cache keys planted."""
    admin = target.admin()
    cache_keys = [k for k in admin.scan_iter(match=CACHE_GLOB, count=1000) if not k.endswith(b":lease")]
    pipe = admin.pipeline(transaction=True)
    for key, kind in WRONG_STATE_KEYS.items():
        pipe.delete(key)
        WRONG_TYPES[kind](pipe, key)
    for key in cache_keys:
        pipe.delete(key)
        pipe.hset(key, mapping={"kind": "f", "payload": "not ours"})
    pipe.execute()
    return len(cache_keys)


@pytest.mark.parametrize("target", ["up_3600"], indirect=True)
@on_server_loop
async def test_fault_7_keys_of_the_wrong_type(target: Target, faces: Faces, caplog: pytest.LogCaptureFixture) -> None:
    with fault_row("7 wrong key types", target, caplog) as (cells, client):
        await asyncio.to_thread(plant_wrong_types, target)
        await asyncio.to_thread(api_face, cells, "first", client)  # writes entries under the keys the next call uses
        planted = await asyncio.to_thread(plant_wrong_types, target)
        assert planted, "no cache entry to replace with a hash"
        out = await asyncio.to_thread(api_face, cells, "wrong types", client)
        await asyncio.to_thread(acknowledge, cells, "wrong types", client, ACK_ID)
        check_rejections_counted(cells, "wrong types", status_row(out))
        cache = out.get("cache_status()")
        cells.check(
            cache is not None and cache_errors(cache) > 0,
            "api cache_status() [wrong types]",
            f"errors {cache_errors(cache)}: a cache key of the wrong type was not counted",
        )

        await asyncio.to_thread(plant_wrong_types, target)
        await rest_face(cells, "wrong types", faces.fetch)
        await asyncio.to_thread(plant_wrong_types, target)
        await ws_face(cells, "wrong types", faces.ws_fetch)
        await asyncio.to_thread(plant_wrong_types, target)
        await cli_face(cells, "wrong types", target, faces.cli, 0)

        # The next agent puts and the next alert write repair every key.
        await asyncio.to_thread(plant_wrong_types, target)
        for name in NODES:
            await asyncio.to_thread(put_node, target.url, name)
        link = RedisLink(target.url, LinkOptions(socket_timeout=5.0))
        try:
            alert = Alert(
                rule="disk_critical",
                node=NODES[2],
                metric="disk_used_percent",
                severity="critical",
                state="firing",
                value=99.0,
                last_value=99.0,
                threshold=97.0,
                message="disk full",
                started_at=time.time(),
                fired_at=time.time(),
            )
            await asyncio.to_thread(RedisAlertStore(link).apply, [Transition(alert, "fired")])
            await asyncio.to_thread(RedisBoard(link, Rejections(), 60.0).put, make_report(NODES[0], time=time.time()))
        finally:
            link.close()
        admin = target.admin()
        wrong = {k: admin.type(k) for k, want in RIGHT_TYPES.items() if admin.type(k) not in (want, b"none")}
        cells.check(not wrong, "repair [after puts and an alert write]", f"keys still of the wrong type: {wrong}")
        out = await asyncio.to_thread(api_face, cells, "repaired", client)
        cells.check(
            nodes_of(out.get("workers()")) == set(NODES),
            "api workers() [repaired]",
            f"nodes {sorted(nodes_of(out.get('workers()')))}",
        )
        ids = set(out["alerts()"]["alert_id"]) if out.get("alerts()") is not None else set()
        cells.check(alert.alert_id in ids, "api alerts() [repaired]", f"ids {sorted(ids)}")
        bodies = await rest_face(cells, "repaired", faces.fetch)
        cells.check(
            {r["node"] for r in rows(bodies.get("api/workers"))} == set(NODES), "rest api/workers [repaired]", ""
        )


def test_matrix_covers_every_rest_endpoint_the_extension_serves() -> None:
    """The matrix' endpoint list is the extension's: a new GET endpoint must join the matrix."""
    from clusternb.server import handlers, metrics, pages

    served = {
        pattern for pattern, *_ in [*handlers.default_handlers, *metrics.default_handlers, *pages.default_handlers]
    }
    covered = {"/clusternb/" + "/".join(parts) for _, parts, _ in ENDPOINTS}
    missing = [
        p
        for p in served
        if "(" not in p and p.rstrip("/?") not in {c.rstrip("/") for c in covered} and not p.endswith("/?")
    ]
    assert not missing, f"GET endpoints not in the fault matrix: {missing}"
