"""clusternb on a real Redis Cluster (three masters, three replicas), not on a standalone server.

What this file proves, against six real redis-server processes (``tests/redis_cluster.py``):

- A :class:`RedisLink` given one node's URL detects the cluster by itself and routes through a cluster client.
- The state store (put, latest, history, leave, departed, liveness, generation), the alert store (apply,
  records, active, the watchdog lease) and their Lua scripts work on a cluster: every state and alert key
  carries the ``{clusternb:v1}`` hash tag, so each script touches one slot, and all of them live on one master.
- ``latest()`` stays one HVALS whatever the number of nodes (counted on the servers, ``INFO commandstats``).
- Cache keys carry no hash tag and spread over every shard; ``clear(prefix)`` (SCAN + UNLINK) reaches every
  master, other namespaces survive, and the single-flight leases work; nothing silently falls back to memory.
- The query client's ``workers``, ``cluster_status``, ``metrics``, ``alerts``, ``acknowledge`` and
  ``cache_status`` answer from data published on the cluster, reporting Redis as connected.
- The death of the node the URL names is one more failover for a connected process.
- A failover (SIGKILL of the master holding the state slot) while three agent processes publish and a client
  queries: no query raises, every agent is ``online`` again soon after a replica takes over, no agent exits
  and none logs a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from clusternb.alerting.records import Alert, Transition
from clusternb.alerting.store import RedisAlertStore
from clusternb.cache import Cache, FallbackBackend, MemoryBackend, RedisBackend
from clusternb.cache.codec import make_entry
from clusternb.config import load_config
from clusternb.queries import Client
from clusternb.redisio.errors import Unavailable
from clusternb.redisio.link import LinkOptions, RedisLink
from clusternb.state.bounds import HistoryBounds
from clusternb.state.redis import RedisStateStore
from clusternb.state.redis_scripts import PREFIX, TAG
from clusternb.state.rollup import MINUTE
from tests.helpers import make_snapshot, stop_process
from tests.redis_cluster import LocalRedisCluster
from tests.server_process import JupyterServer

pytestmark = pytest.mark.redis

STATE_KEY = f"{PREFIX}latest"
AGENT_INTERVAL = 1.0


# -- fixtures -------------------------------------------------------------------------------------------------


def _start_cluster() -> LocalRedisCluster:
    try:
        return LocalRedisCluster().start()
    except RuntimeError as exc:  # a missing binary or a cluster that did not form fails loudly, never skips
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[LocalRedisCluster]:
    """One cluster for the tests that kill no node (each starts from empty masters, see ``cluster``)."""
    cluster = _start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(shared_cluster: LocalRedisCluster) -> Iterator[LocalRedisCluster]:
    with shared_cluster.client() as client:
        client.flushall(target_nodes=client.PRIMARIES)
    yield shared_cluster


@pytest.fixture
def own_cluster() -> Iterator[LocalRedisCluster]:
    """A cluster of this test's own: it kills a node."""
    cluster = _start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def link(cluster: LocalRedisCluster) -> Iterator[RedisLink]:
    # Timeouts generous for two shared cores: a slow answer must not read as an outage here.
    lnk = RedisLink(cluster.url, LinkOptions(socket_timeout=2.0, connect_timeout=2.0))
    yield lnk
    lnk.close()


# -- helpers --------------------------------------------------------------------------------------------------


def _node(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True)


def _masters(cluster: LocalRedisCluster) -> list[int]:
    """Ports of the masters serving slots, from CLUSTER SLOTS. Not ``cluster.masters()``: right after the cluster
    formed, CLUSTER NODES as one node sees it may still flag a replica ``master`` (gossip not yet settled)."""
    with _node(cluster.alive[0]) as node:
        ranges = node.execute_command("CLUSTER", "SLOTS")
    return sorted({int(master[1]) for _first, _last, master, *_ in ranges})


def _keys_on(port: int, pattern: str) -> list[str]:
    """Keys matching ``pattern`` stored on the node ``port`` itself (no redirection)."""
    with _node(port) as node:
        return list(node.scan_iter(match=pattern, count=1000))


def _commands_run(cluster: LocalRedisCluster, action: Callable[[], object]) -> dict[str, int]:
    """Commands the masters ran during ``action()``, summed over masters, less what measuring costs itself
    (this helper's own connections, CONFIG RESETSTAT, INFO, CLUSTER SLOTS), found by measuring a no-op first."""

    def measure(fn: Callable[[], object]) -> dict[str, int]:
        masters = _masters(cluster)
        for port in masters:
            with _node(port) as node:
                node.config_resetstat()
        fn()
        calls: dict[str, int] = {}
        for port in masters:
            with _node(port) as node:
                stats = node.info("commandstats")
            for name, stat in stats.items():
                command = name.removeprefix("cmdstat_")
                calls[command] = calls.get(command, 0) + int(stat["calls"])
        return calls

    noise = measure(lambda: None)
    calls = measure(action)
    return {k: n - noise.get(k, 0) for k, n in calls.items() if n - noise.get(k, 0) and k not in _REPLICATION_COMMANDS}


#: What replicas send their masters by themselves, about once a second: not the action's, and not predictable
#: enough to subtract (a REPLCONF ACK that falls inside the action made this helper's counts flaky).
_REPLICATION_COMMANDS = frozenset({"replconf", "ping"})


def _alert(node: str, state: str, now: float, rule: str = "cpu", **changes: Any) -> Alert:
    fired = now if state in ("firing", "resolved") else None
    ended = now + 1 if state == "resolved" else None
    return Alert(
        rule=rule, node=node, metric="cpu_percent", severity="warning", state=state,  # type: ignore[arg-type]
        value=90.0, last_value=90.0, threshold=50.0, message=f"cpu on {node}", started_at=now,
        fired_at=fired, ended_at=ended, **changes,
    )  # fmt: skip


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except Unavailable:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- 1. detection and the stores ------------------------------------------------------------------------------


def test_link_detects_the_cluster(cluster: LocalRedisCluster) -> None:
    lnk = RedisLink(cluster.url)
    try:
        assert lnk.cluster is None  # nothing asked yet
        assert lnk.call(lambda c: c.ping())
        assert lnk.cluster is True
        assert type(lnk.client()).__name__ == "RedisCluster"
        assert lnk.status()["mode"] == "cluster" and lnk.available
        # The cluster client found every master from the one node it was given.
        nodes = lnk.client().get_primaries()
        assert sorted(n.port for n in nodes) == _masters(cluster)
    finally:
        lnk.close()


def test_state_store_on_a_cluster(cluster: LocalRedisCluster, link: RedisLink) -> None:
    store = RedisStateStore(link, HistoryBounds(window=3600, max_samples=100))
    now = MINUTE.row_start(time.time()) + 30.0  # every sample below in one minute: none is rolled up before leave
    names = [f"node-{i:02d}" for i in range(50)]
    gen0 = store.generation()
    for step in (2, 1, 0):
        for name in names:
            store.put(make_snapshot(name, time=now - step, interval_s=1.0))
    assert link.cluster is True
    assert store.generation() >= gen0 + 150  # every put INCRs the counter

    latest = {s.node: s for s in store.latest()}
    assert sorted(latest) == names
    assert all(s.time == now for s in latest.values())

    history = store.history(now - 10)
    assert len(history) == 150
    assert sorted(s.time for s in store.history(now - 10, nodes=["node-07"])) == [now - 2, now - 1, now]
    assert [s.time for s in store.history(now - 1.5, now - 0.5, nodes=["node-07"])] == [now - 1]

    liveness = store.liveness()
    assert set(liveness.seen) == set(names)
    assert liveness.seen["node-03"] == (now, 1.0)
    assert liveness.departed == {}

    gen = store.generation()
    store.leave("node-03", now + 0.5)
    assert store.generation() == gen + 1
    assert store.departed() == {"node-03": now + 0.5}
    assert store.liveness().departed == {"node-03": now + 0.5}
    assert store.rolled_nodes() == ["node-03"]  # its leave closed its open minute
    assert [b.counts for b in store.rollups(MINUTE, now - 3600, now + 60)] == [[3]]
    store.put(make_snapshot("node-03", time=now + 1, interval_s=1.0))  # back: the departure is cleared
    assert store.departed() == {}
    assert store.rejections.total == 0

    # Every state key lives on the one master serving the hash tag's slot, and on no other.
    owner = cluster.master_of(STATE_KEY)
    for port in _masters(cluster):
        keys = _keys_on(port, f"{TAG}*")
        if port == owner:
            hist = [k for k in keys if k.startswith(f"{PREFIX}samples:")]
            assert len(hist) == 50
            # node-03's leave closed its open minute: its rollups and the registry of rolled nodes, here too
            rolled = [k for k in keys if k.startswith(f"{PREFIX}roll")]
            assert sorted(rolled) == sorted(PREFIX + k for k in ("roll:1m:node-03", "roll:1h:node-03", "rolled"))
            # latest, seen, intervals, gen (departed emptied, so gone), one history per node
            others = set(keys) - set(hist) - set(rolled)
            assert sorted(others) == sorted(PREFIX + k for k in ("gen", "intervals", "latest", "seen"))
        else:
            assert keys == [], f"state keys on master {port}, not on {owner}: {keys}"
    assert link.health.outages == 0 and link.health.failures == 0
    store.close()


def test_latest_of_a_thousand_nodes_is_one_hvals(cluster: LocalRedisCluster, link: RedisLink) -> None:
    store = RedisStateStore(link, HistoryBounds(window=3600, max_samples=10))
    now = time.time()
    for i in range(1000):
        store.put(make_snapshot(f"n{i:04d}", time=now, interval_s=1.0))

    def reads(n: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(n):
                assert len(store.latest()) == 1000

        return run

    assert _commands_run(cluster, reads(1)) == {"hvals": 1}
    assert _commands_run(cluster, reads(3)) == {"hvals": 3}  # unchanged records: one read per call, not per node
    store.liveness()  # the first call loads the script (NOSCRIPT, SCRIPT LOAD): measured warm
    calls = _commands_run(cluster, store.liveness)
    # One EVALSHA; the rest are the script's own reads, which commandstats counts too.
    assert calls.get("evalsha") == 1 and set(calls) <= {"evalsha", "type", "zrange", "hgetall"}, calls
    assert _commands_run(cluster, store.generation) == {"get": 1}
    store.close()


def test_alert_store_on_a_cluster(cluster: LocalRedisCluster, link: RedisLink) -> None:
    state = RedisStateStore(link, HistoryBounds(window=3600))
    now = time.time()
    for name in ("a", "b"):
        state.put(make_snapshot(name, time=now, interval_s=1.0))
    alerts = RedisAlertStore(link, state=state)
    hot_a, hot_b = _alert("a", "pending", now), _alert("b", "pending", now)
    alerts.apply([Transition(hot_a, "pending"), Transition(hot_b, "pending")])
    alerts.apply([Transition(_alert("a", "firing", now), "fired")])
    assert {(a.alert_id, a.state) for a in alerts.active()} == {("cpu:a", "firing"), ("cpu:b", "pending")}

    alerts.apply([Transition(_alert("a", "resolved", now), "resolved"), Transition(hot_b, "dropped")])
    records = alerts.records()
    assert [(a.alert_id, a.state) for a in records] == [("cpu:a", "resolved")]
    assert alerts.active() == []
    alerts.apply([Transition(_alert("b", "firing", now), "fired")])

    watch = alerts.take_watchdog("me", 5.0)
    assert watch.held_for == 0.0
    assert [a.alert_id for a in watch.active] == ["cpu:b"]
    assert watch.liveness is not None and set(watch.liveness.seen) == {"a", "b"}
    other = alerts.take_watchdog("other", 5.0)
    assert 0 < other.held_for <= 5.0 and other.liveness is None
    assert alerts.shorten_watchdog("me", 0.001)
    time.sleep(0.05)
    assert alerts.take_watchdog("other", 5.0).held_for == 0.0

    assert alerts.queued == 0 and alerts.rejections.total == 0 and link.health.failures == 0
    owner = cluster.master_of(STATE_KEY)
    assert cluster.master_of(alerts.active_key) == owner == cluster.master_of(alerts.watchdog_key)
    state.close()


def test_cache_spreads_over_shards_and_clears_on_every_master(cluster: LocalRedisCluster, link: RedisLink) -> None:
    backend = FallbackBackend(RedisBackend(link), MemoryBackend())
    cache = Cache(backend, ttls={"workers": 60.0, "metrics": 60.0})
    workers, metrics = cache.namespace_prefix("workers"), cache.namespace_prefix("metrics")
    for i in range(100):
        value: dict[str, int]
        value, entry = cache.get_or_compute("workers", f"{workers}k{i}", functools.partial(dict, i=i))
        assert value == {"i": i} and entry is not None
    for i in range(10):
        cache.get_or_compute("metrics", f"{metrics}k{i}", functools.partial(int, i))
    hit: Any = cache.get_or_compute("workers", f"{workers}k42", lambda: "recomputed")[0]
    assert hit == {"i": 42}  # a hit, not a recomputation

    masters = _masters(cluster)
    per_master = {port: len(_keys_on(port, f"{workers}*")) for port in masters}
    assert sum(per_master.values()) == 100
    assert all(n > 0 for n in per_master.values()), f"cache keys not spread over the shards: {per_master}"
    assert backend.usage(workers)[0] == 100

    assert cache.invalidate("workers") == 100
    for port in masters:
        assert _keys_on(port, f"{workers}*") == [], f"master {port} kept entries of a cleared namespace"
    assert sum(len(_keys_on(port, f"{metrics}*")) for port in masters) == 10  # another namespace survives
    assert cache.get_or_compute("workers", f"{workers}k42", lambda: "recomputed")[0] == "recomputed"

    status = cache.status()
    assert status["backend"] == "redis" and status["redis_state"] == "connected" and status["fallbacks"] == 0
    assert all(ns["errors"] == 0 for ns in status["namespaces"].values()), status["namespaces"]
    assert status["namespaces"]["metrics"]["entries"] == 10

    # The async path (a cluster routes it through the sync client in a thread).
    async def round_trip() -> Any:
        await backend.aset(f"{workers}async", make_entry([1, 2], time.time()), 60.0)
        return await backend.aget(f"{workers}async")

    entry = asyncio.run(round_trip())
    assert entry is not None and entry.value_for_caller() == [1, 2]

    # Single-flight leases across processes, on whichever shard the key lands.
    redis_backend = backend.primary
    for key in (f"{workers}lease-a", f"{workers}lease-b", f"{workers}lease-c"):
        token = redis_backend.acquire_lease(key, 5.0)
        assert token is not None
        assert redis_backend.acquire_lease(key, 5.0) is None  # held
        redis_backend.release_lease(key, "not-the-token")
        assert redis_backend.acquire_lease(key, 5.0) is None  # a stranger's release is a no-op
        redis_backend.release_lease(key, token)
        again = redis_backend.acquire_lease(key, 5.0)
        assert again is not None
        redis_backend.release_lease(key, again)
    assert link.health.failures == 0
    cache.close()


# -- 2. the query client ----------------------------------------------------------------------------------------


def test_query_client_on_a_cluster(cluster: LocalRedisCluster, link: RedisLink) -> None:
    publisher = RedisStateStore(link, HistoryBounds(window=3600))
    now = time.time()
    names = [f"w{i}" for i in range(5)]
    for step in (2, 1, 0):
        for name in names:
            publisher.put(make_snapshot(name, time=now - step, interval_s=3600.0, cpu_percent=90.0 - step))
    RedisAlertStore(link, state=publisher).apply([Transition(_alert("w1", "firing", now), "fired")])

    settings = load_config(redis_url=cluster.url, interval=3600, redis_socket_timeout=2.0)
    with Client(settings, sample_local=False) as c:
        workers = c.workers()
        assert sorted(workers.index) == names
        assert set(workers["status"]) == {"online"}
        assert c.link is not None and c.link.cluster is True

        status = c.cluster_status().iloc[0]
        assert status["redis_state"] == "connected"
        assert status["nodes_total"] == 5 and status["nodes_online"] == 5
        assert status["alerts_firing"] == 1 and status["records_rejected"] == 0

        metrics = c.metrics("5m")
        assert len(metrics) == 15
        assert sorted(set(metrics["node"])) == names
        assert sorted(metrics["cpu_percent"].unique()) == [88.0, 89.0, 90.0]

        active = c.alerts()
        assert list(active["alert_id"]) == ["cpu:w1"] and active.iloc[0]["state"] == "firing"
        c.acknowledge("cpu:w1", by="sre")
        assert bool(c.alerts().iloc[0]["acknowledged"])

        cache = c.cache_status()
        assert set(cache["redis_state"]) == {"connected"} and set(cache["backend"]) == {"redis"}
        assert set(cache["near_cache"]) == {"cluster"}  # tracking is per shard: every read goes to its shard
        assert cache["entries"]["workers"] >= 1
        assert int(cache["errors"].sum()) == 0 and int(cache["fallbacks"].max()) == 0
        assert c.link.health.failures == 0
    publisher.close()


# -- 3. a failover while agents publish -------------------------------------------------------------------------


class AgentProc:
    """One ``clusternb agent`` process; stdout and stderr go to its log file."""

    def __init__(self, name: str, url: str, log: Path) -> None:
        self.name = name
        self.log = log
        cmd = [sys.executable, "-m", "clusternb.cli", "agent", "--redis", url, "--name", name]
        cmd += ["--interval", str(AGENT_INTERVAL)]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def agents(own_cluster: LocalRedisCluster, tmp_path: Path) -> Iterator[list[AgentProc]]:
    started = [AgentProc(f"agent-{i}", own_cluster.url, tmp_path / f"agent-{i}.log") for i in range(3)]
    yield started
    for agent in started:
        stop_process(agent.proc)


def _rest_get(server: JupyterServer, path: str) -> int:
    request = urllib.request.Request(server.url(path), headers={"Authorization": f"token {server.token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _watch_ws(url: str, stop: threading.Event, frames: list[dict[str, Any]], errors: list[str]) -> None:
    """Hold one WebSocket subscribed to status and workers until ``stop``; note frames, error frames, a close."""
    from tornado.websocket import websocket_connect

    async def run() -> None:
        conn = await websocket_connect(url)
        await conn.write_message(json.dumps({"subscribe": ["status", "workers"]}))
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(conn.read_message(), timeout=0.5)
            except TimeoutError:
                continue  # only changes are pushed
            if message is None:
                errors.append("the WebSocket closed during the failover")
                return
            frame = json.loads(message)
            frames.append(frame)
            if frame.get("type") == "error":
                errors.append(f"error frame: {frame}")
        conn.close()

    try:
        asyncio.run(run())
    except Exception:
        errors.append(traceback.format_exc())


@pytest.mark.server
def test_failover_while_agents_publish(own_cluster: LocalRedisCluster, agents: list[AgentProc]) -> None:
    """The fault matrix's cluster row: Python queries, REST, the WebSocket and the CLI through a master's death."""
    names = {a.name for a in agents}
    settings = load_config(redis_url=own_cluster.url, interval=AGENT_INTERVAL)
    extra = (
        "c.ClusterNBApp.state_store = None\n"
        "c.ClusterNBApp.push_interval = 0.5\n"
        f"c.ClusterNB.redis_url = {own_cluster.url!r}\n"
        f"c.ClusterNB.interval = {AGENT_INTERVAL!r}\n"
    )
    with Client(settings, sample_local=False) as c, JupyterServer(extra) as server:

        def all_online() -> bool:
            frame = c.workers()
            return set(frame.index) == names and set(frame["status"]) == {"online"}

        wait_for("three agents online", all_online, timeout=60)  # each agent imports pandas: slow on 2 cores
        assert c.link is not None and c.link.cluster is True

        errors: list[str] = []
        calls = [0]
        statuses: list[int] = []
        cli_runs: list[subprocess.CompletedProcess[str]] = []

        def query_loop() -> None:
            end = time.monotonic() + 8.0
            while time.monotonic() < end:
                for query in (c.workers, c.cluster_status):
                    try:
                        query()
                    except Exception:
                        errors.append(traceback.format_exc())
                    calls[0] += 1
                for path in ("clusternb/api/workers", "clusternb/api/cluster/status", "clusternb/api/alerts"):
                    statuses.append(_rest_get(server, path))
                time.sleep(0.1)

        def cli_loop() -> None:
            end = time.monotonic() + 8.0
            while time.monotonic() < end:
                cli_runs.append(
                    subprocess.run(
                        [sys.executable, "-m", "clusternb.cli", "status", "--redis", own_cluster.url],
                        capture_output=True, text=True, timeout=60,
                    )
                )  # fmt: skip

        stop_ws = threading.Event()
        ws_frames: list[dict[str, Any]] = []
        ws_errors: list[str] = []
        ws_url = server.url("clusternb/api/ws", token=True).replace("http://", "ws://")
        watcher = threading.Thread(target=_watch_ws, args=(ws_url, stop_ws, ws_frames, ws_errors), name="ws-watch")
        watcher.start()
        cli = threading.Thread(target=cli_loop, name="cli-loop")

        victim = own_cluster.master_of(STATE_KEY)
        thread = threading.Thread(target=query_loop, name="query-loop")
        thread.start()
        cli.start()
        try:
            killed = time.monotonic()
            own_cluster.kill(victim)
            promoted = own_cluster.wait_failover(victim, timeout=10)
            failed_over, failed_over_at = time.monotonic(), time.time()
            assert promoted != victim and own_cluster.master_of(STATE_KEY) == promoted

            def all_back() -> bool:  # a sample written after the failover, by every agent, and all online
                fresh = all(s.time > failed_over_at for s in c.store.latest())
                return fresh and all_online()

            recovered = wait_for("every agent to publish and be online after the failover", all_back, timeout=15)
        finally:
            thread.join()  # the loops end by themselves after their ~8 s
            cli.join()
            stop_ws.set()
            watcher.join()
        health = c.link.health
        print(
            f"\nfailover: replica {promoted} took over from {victim} {failed_over - killed:.1f} s after the kill; "
            f"every agent published and online {recovered:.1f} s later (3 intervals: {3 * AGENT_INTERVAL:g} s); "
            f"{calls[0]} queries meanwhile, client link: {health.outages} outage, {health.failures} failed calls"
        )
        for agent in agents:
            back = [line.split("WARNING: ", 1)[-1] for line in agent.text().splitlines() if "reachable again" in line]
            print(f"  {agent.name}:", *back)
        assert not errors, f"{len(errors)} of {calls[0]} queries raised during the failover; first:\n{errors[0]}"
        assert statuses and all(code == 200 for code in statuses), sorted(set(statuses))
        assert not ws_errors and ws_frames, ws_errors
        assert cli_runs and all(r.returncode in (0, 3) and "Traceback" not in r.stderr for r in cli_runs), [
            (r.returncode, r.stderr) for r in cli_runs
        ]
        print(f"  REST: {len(statuses)} answers, all 200; WebSocket: {len(ws_frames)} frames; CLI: "
              f"exit statuses {sorted({r.returncode for r in cli_runs})} over {len(cli_runs)} runs")  # fmt: skip
        assert c.link.health.outages >= 1  # the queries did meet the failover (and answered from memory meanwhile)
        assert c.cluster_status().iloc[0]["redis_state"] == "connected"

    for agent in agents:
        assert agent.proc.poll() is None, f"{agent.name} exited ({agent.proc.returncode}):\n{agent.text()}"
        assert "Traceback" not in agent.text(), agent.text()


def test_the_node_of_the_url_can_die(own_cluster: LocalRedisCluster) -> None:
    """The URL names one node only; once connected, its death is one more failover: the cluster client knows
    every node and follows the replica that takes over its slots (here: cache slots, not the state's)."""
    seed = own_cluster.ports[0]
    assert seed in _masters(own_cluster) and own_cluster.master_of(STATE_KEY) != seed
    settings = load_config(redis_url=own_cluster.url, interval=3600, redis_socket_timeout=2.0)
    publisher_link = RedisLink(own_cluster.url, LinkOptions(socket_timeout=2.0, connect_timeout=2.0))
    publisher = RedisStateStore(publisher_link, HistoryBounds(window=3600))
    with Client(settings, sample_local=False) as c:
        publisher.put(make_snapshot("before", time=time.time(), interval_s=3600.0))
        assert list(c.workers().index) == ["before"]
        seed_key = next(
            f"clusternb:cache:probe{i}"
            for i in range(1000)
            if own_cluster.master_of(f"clusternb:cache:probe{i}") == seed
        )

        own_cluster.kill(seed)
        promoted = own_cluster.wait_failover(seed, timeout=10)
        assert own_cluster.master_of(seed_key) == promoted

        def publish_after() -> bool:
            publisher.put(make_snapshot("after", time=time.time(), interval_s=3600.0))
            return True

        wait_for("a put after the seed node died", publish_after, timeout=15)
        wait_for("the client to read the new node", lambda: "after" in set(c.workers().index), timeout=15)
        link = c.link
        assert link is not None
        wait_for("a write on the seed's old slots", lambda: bool(link.call(lambda r: r.set(seed_key, b"1"))), 15)
        assert c.cluster_status().iloc[0]["redis_state"] == "connected"
        assert set(c.cache_status()["redis_state"]) == {"connected"}
    publisher.close()
    publisher_link.close()
