"""The Redis state store behaves like the memory store, stays bounded, and reads nothing it did not write."""

from __future__ import annotations

import builtins
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from clusternb.config import load_config
from clusternb.redisio.errors import Unavailable
from clusternb.redisio.link import RedisLink
from clusternb.state.bounds import HistoryBounds
from clusternb.state.redis import PREFIX, RedisStateStore
from tests.helpers import make_snapshot
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


class CountingConnection(redis.Connection):
    """A real connection that counts how often it writes to the socket: one write per round trip."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def eventually(check: Any, seconds: float = 10.0) -> bool:
    """True once ``check()`` returns truthy without raising ``Unavailable`` (the link backs off meanwhile)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except Unavailable:
            pass
        time.sleep(0.05)
    return False


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStateStore]:
    s = RedisStateStore(redis_server.url, socket_timeout=5.0)
    yield s
    s.close()


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Server-side count of each command executed so far (``INFO commandstats``), INFO itself left out."""
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k != "cmdstat_info"}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


# -- bounded like the memory store (the rest of the shared behaviour: tests/integration/test_state_stores.py) --


def test_ten_thousand_samples_stay_within_the_window(redis_server: RedisServer) -> None:
    store = RedisStateStore(redis_server.url, HistoryBounds(window=600.0), socket_timeout=5.0)
    raw = redis_server.client()
    t0 = 1_700_000_000.0
    sizes: list[int] = []
    for i in range(10_000):
        store.put(make_snapshot(time=t0 + i))
        if i in (4_999, 9_999):  # both well past the window: the key should hold the same amount
            size = raw.memory_usage(store.hist_key("n1"), samples=0)
            assert size is not None
            sizes.append(size)
    assert raw.zcard(store.hist_key("n1")) == 601  # samples from t-600 s to t, inclusive
    history = store.history(since=0)
    assert len(history) == 601
    assert min(s.time for s in history) == t0 + 10_000 - 1 - 600
    assert abs(sizes[1] - sizes[0]) < 0.02 * sizes[0], sizes
    ttl = raw.ttl(store.hist_key("n1"))
    assert 0 < ttl <= 600  # a history nobody writes to any more expires
    store.close()


# -- Redis-specific behaviour -------------------------------------------------------------------------------


def test_generation_keeps_growing_across_a_redis_restart(redis_server: RedisServer, store: RedisStateStore) -> None:
    """Redis runs without persistence: a counter restarting at 1 could match a generation cached before."""
    for i in range(5):
        store.put(make_snapshot(time=100.0 + i))
    before = store.generation()
    redis_server.restart()
    assert store.generation() == 0  # state is gone with the old server ...
    store.put(make_snapshot(time=200.0))  # ... and the pooled connection reconnects on its own
    assert store.generation() > before


def test_puts_survive_a_script_flush_and_a_server_that_is_down_then_back(
    redis_server: RedisServer, store: RedisStateStore
) -> None:
    store.put(make_snapshot(time=100.0))
    redis_server.client().script_flush()  # what a restarted Redis has forgotten too
    store.put(make_snapshot(time=101.0))
    redis_server.kill()
    with pytest.raises(Unavailable):
        store.put(make_snapshot(time=102.0))
    redis_server.start()
    # The held connection was dropped and is made again once the link's backoff lets a call through.
    assert eventually(lambda: store.put(make_snapshot(time=103.0)) is None)
    assert [s.time for s in store.history(0)] == [103.0]


def test_keys_of_the_wrong_type_read_as_empty_and_the_next_put_replaces_them(
    redis_server: RedisServer, store: RedisStateStore
) -> None:
    store.put(make_snapshot(time=100.0))
    generation = store.generation()
    raw = redis_server.client()
    raw.set(store.hist_key("n1"), "another program's string under our name")
    raw.delete(PREFIX + "latest", PREFIX + "departed", PREFIX + "gen")
    raw.rpush(PREFIX + "latest", "a list where a hash belongs")
    raw.set(PREFIX + "departed", "a string")
    raw.set(PREFIX + "gen", "not a number")
    assert store.latest() == [] and store.departed() == {} and store.history(0, nodes=["n1"]) == []
    assert store.generation() == 0
    assert store.rejections.total == 4  # latest, departed, history and the generation, each counted
    store.put(make_snapshot(time=101.0))
    assert [s.time for s in store.latest()] == [101.0]
    assert [s.time for s in store.history(0)] == [101.0]
    assert store.generation() > generation  # so no cache serves the previous sample as current
    store.leave("n2", 101.0)
    assert store.departed() == {"n2": 101.0}


def test_nodes_gone_longer_than_the_window_are_pruned(redis_server: RedisServer) -> None:
    store = RedisStateStore(redis_server.url, HistoryBounds(window=100.0))
    store.put(make_snapshot("old", time=1_000.0))
    store.leave("gone", 1_000.0)
    store.put(make_snapshot("recent", time=1_050.0))
    assert {s.node for s in store.latest()} == {"old", "recent"}
    store.put(make_snapshot("new", time=1_120.0))  # 'old' is now 120 s behind the newest sample
    assert {s.node for s in store.latest()} == {"recent", "new"}
    assert store.departed() == {}
    assert redis_server.client().zscore(PREFIX + "seen", "old") is None
    assert redis_server.client().hget(PREFIX + "intervals", "old") is None
    assert set(store.liveness().seen) == {"recent", "new"}
    store.close()


def test_a_writer_with_a_clock_far_ahead_does_not_prune_the_others_and_is_rejected(
    redis_server: RedisServer,
) -> None:
    store = RedisStateStore(redis_server.url, HistoryBounds(window=60.0, max_clock_skew=300.0))
    now = time.time()
    store.put(make_snapshot("honest", time=now))
    store.put(make_snapshot("future", time=now + 86_400))  # the server's clock says 'honest' is fresh
    assert {s.node for s in store.latest()} == {"honest"}  # a day ahead would show "online" for a day
    assert [(kind, node) for kind, node, _ in store.rejections.counts()] == [("latest", "future")]
    assert redis_server.client().hget(PREFIX + "latest", "future") is None  # pruned, not kept for ever
    store.put(make_snapshot("honest", time=now + 1))  # the next put prunes its registry entry too
    assert redis_server.client().zscore(PREFIX + "seen", "future") is None
    assert set(store.liveness().seen) == {"honest"}
    store.close()


def test_garbage_and_foreign_versions_are_skipped_and_counted(
    redis_server: RedisServer, store: RedisStateStore
) -> None:
    store.put(make_snapshot("good", time=100.0))
    raw = redis_server.client()
    wrong_version = {**make_snapshot("v2").to_dict(), "schema": 2}
    missing_field = make_snapshot("broken").to_dict()
    del missing_field["cpu_percent"]
    bad = {
        "bytes": b"\x00\xff\xfe not json at all",
        "v2": orjson.dumps(wrong_version),
        "broken": orjson.dumps(missing_field),
        "list": b"[1, 2, 3]",
    }
    for field, value in bad.items():
        raw.hset(PREFIX + "latest", field, value)
    raw.zadd(store.hist_key("good"), {b"\x80garbage": 100.5, orjson.dumps(wrong_version): 100.6})
    raw.hset(PREFIX + "departed", mapping={"x": b"yesterday"})

    assert [s.node for s in store.latest()] == ["good"]
    assert store.skipped == 4
    assert [s.time for s in store.history(0, nodes=["good"])] == [100.0]
    assert store.departed() == {}
    stats = store.stats()
    assert stats["skipped"] == store.skipped == 7
    assert stats["skipped_by_reason"] == {
        "not JSON": 2,
        "other schema version": 2,
        "invalid snapshot: Object missing required field `cpu_percent`": 1,
        "not a snapshot": 1,
        "not a node and a time": 1,
    }
    nodes = {node for _, node, _ in store.rejections.counts()}
    assert {"v2", "broken", "(unknown)"} <= nodes  # counted per node where the record names one
    # Rejected records are pruned (only if they still hold the rejected bytes): the next read finds none.
    assert raw.hlen(PREFIX + "latest") == 1 and raw.zcard(store.hist_key("good")) == 1
    assert [s.node for s in store.latest()] == ["good"]
    assert store.skipped == 7


def test_liveness_skips_registry_entries_it_cannot_read(redis_server: RedisServer, store: RedisStateStore) -> None:
    store.put(make_snapshot("good", time=100.0, interval_s=1.0))
    store.put(make_snapshot("older-writer", time=100.0, interval_s=5.0))
    raw = redis_server.client()
    raw.hdel(PREFIX + "intervals", "older-writer")  # as a clusternb without the intervals hash left it
    raw.zadd(PREFIX + "seen", {"no-interval": 100.0, "words": 100.0, "zero": 100.0})
    raw.hset(PREFIX + "intervals", mapping={"words": "fast", "zero": "0"})
    raw.hset(PREFIX + "departed", mapping={"x": b"yesterday", "good": "99"})
    beats = store.liveness()
    assert beats.seen == {"good": (100.0, 1.0), "older-writer": (100.0, 5.0)}  # its record has the interval
    assert beats.departed == {"good": 99.0}
    assert store.stats()["skipped_by_reason"] == {
        "no valid interval": 2,
        "not a node, a time and an interval": 1,
        "not a node and a time": 1,
    }


def test_a_pickle_in_redis_is_never_unpickled(
    redis_server: RedisServer, store: RedisStateStore, tmp_path: Path
) -> None:
    class Payload:
        def __init__(self, path: Path) -> None:
            self.path = path

        def __reduce__(self) -> tuple[Any, ...]:
            return (builtins.open, (str(self.path), "w"))

    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Payload(proof))).close()
    assert proof.exists()  # the payload is live: unpickling it creates a file

    target = tmp_path / "pwned"
    evil = pickle.dumps(Payload(target))
    raw = redis_server.client()
    store.put(make_snapshot("good", time=100.0))
    raw.hset(PREFIX + "latest", "evil", evil)
    raw.zadd(store.hist_key("good"), {evil: 100.0})
    raw.hset(PREFIX + "departed", "evil", evil)

    assert [s.node for s in store.latest()] == ["good"]
    assert [s.node for s in store.history(0)] == ["good"]
    assert store.departed() == {}
    assert not target.exists()
    assert store.skipped == 3


def test_redis_errors_arrive_as_clusternb_exceptions(redis_server: RedisServer, store: RedisStateStore) -> None:
    store.put(make_snapshot(time=100.0))
    redis_server.kill()
    with pytest.raises(Unavailable, match="unreachable"):
        store.put(make_snapshot(time=101.0))
    with pytest.raises(Unavailable):  # backing off: at once, without a round trip
        store.latest()
    assert store.link.health.state == "failing" and store.link.health.outages == 1


def test_an_invalid_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a Redis URL"):
        RedisStateStore("http://localhost:6379")
    with pytest.raises(ValueError, match="URL"):
        RedisStateStore("")


def test_built_from_settings(redis_server: RedisServer) -> None:
    settings = load_config(redis_url=redis_server.url, history_window=60.0, history_max_samples=7)
    store = RedisStateStore.from_settings(settings)
    assert (store.window, store.max_samples) == (60.0, 7)
    store.put(make_snapshot(time=100.0))
    assert len(store.latest()) == 1
    store.close()


# -- cost: round trips --------------------------------------------------------------------------------------


def test_a_thousand_nodes_cost_one_round_trip_per_call(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5.0, connection_class=CountingConnection)
    store = RedisStateStore(RedisLink(redis_server.url, client=client))
    now = time.time()
    store.put(make_snapshot("node-0000", time=now))  # connect and load the put script (not the store's cost)

    server = redis_server.client()
    before = command_calls(server)
    CountingConnection.sends = 0
    for i in range(1_000):
        store.put(make_snapshot(f"node-{i:04d}", time=now))
    assert CountingConnection.sends == 1_000  # one script call per put ...
    assert delta(before, command_calls(server))["evalsha"] == 1_000  # ... never a reload once loaded

    before = command_calls(server)
    CountingConnection.sends = 0
    nodes = store.latest()
    assert CountingConnection.sends == 1
    assert delta(before, command_calls(server)) == {"hvals": 1}
    assert len(nodes) == 1_000

    store.liveness()  # loads its script
    CountingConnection.sends = 0
    beats = store.liveness()
    assert CountingConnection.sends == 1
    assert len(beats.seen) == 1_000 and beats.departed == {}

    CountingConnection.sends = 0
    history = store.history(now - 1)
    assert len(history) == 1_000
    assert CountingConnection.sends == 2  # the node list, then one pipeline across all nodes
    CountingConnection.sends = 0
    store.history(now - 1, nodes=["node-0001", "node-0002"])
    assert CountingConnection.sends == 1
    store.close()


def test_only_records_that_changed_are_decoded_again(redis_server: RedisServer, store: RedisStateStore) -> None:
    # Twice over: a Redis hash that grew past 256 fields rehashes one bucket per write on it, and lists its
    # values in a changing order until done; the second round completes it, as agents' next samples do.
    for _ in range(2):
        for i in range(300):
            store.put(make_snapshot(f"node-{i:03d}", time=100.0))
    first = {s.node: s for s in store.latest()}
    assert len(first) == 300
    again = {s.node: s for s in store.latest()}
    assert all(again[n] is first[n] for n in first)  # nothing changed: every snapshot reused, none decoded

    store.put(make_snapshot("node-007", time=101.0, cpu_percent=77.0))
    redis_server.client().hset(PREFIX + "latest", "node-008", b"not a record")
    skipped = store.skipped
    third = {s.node: s for s in store.latest()}
    assert third["node-007"].time == 101.0 and third["node-007"].cpu_percent == 77.0
    assert "node-008" not in third and len(third) == 299 and store.skipped == skipped + 1
    assert all(third[n] is first[n] for n in third if n != "node-007")
    store.latest()
    assert store.skipped == skipped + 1  # the garbage was pruned: not skipped (or counted) again
    redis_server.client().hset(PREFIX + "latest", "node-008", b"not a record")  # planted again

    for i in range(300):  # every node published: all decoded anew, the garbage skipped
        if i != 8:
            store.put(make_snapshot(f"node-{i:03d}", time=102.0, cpu_percent=float(i % 100)))
    busy = {s.node: s for s in store.latest()}
    assert len(busy) == 299 and store.skipped == skipped + 2
    assert all(s.time == 102.0 and s.cpu_percent == float(int(s.node[5:]) % 100) for s in busy.values())

    store.put(make_snapshot("node-300", time=103.0))  # a new node: the hash may reorder, answers stay right
    grown = {s.node: s for s in store.latest()}
    assert len(grown) == 300 and grown["node-300"].time == 103.0 and grown["node-007"].time == 102.0
