"""One behavioural suite for every state store: the memory store and the Redis store on a real redis-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from clusternb.state.base import StateStore
from clusternb.state.bounds import HistoryBounds
from clusternb.state.memory import MemoryStateStore
from clusternb.state.redis import RedisStateStore
from tests.helpers import make_snapshot

StoreFactory = Callable[..., StateStore]


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    made: list[StateStore] = []

    def make(**kwargs: float) -> StateStore:
        if request.param == "memory":
            store: StateStore = MemoryStateStore(**kwargs)  # type: ignore[arg-type]
        else:
            server = request.getfixturevalue("redis_server")
            store = RedisStateStore(server.url, HistoryBounds(**kwargs), socket_timeout=5.0)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def stored_samples(store: StateStore, node: str) -> int:
    """Samples the store really keeps for ``node`` (its own count, not what a query filters)."""
    if isinstance(store, MemoryStateStore):
        return store.sample_count()
    assert isinstance(store, RedisStateStore)
    return int(store.link.client().zcard(store.hist_key(node)))


def test_hard_cap_holds_even_when_the_clock_jumps_back(make_store: StoreFactory) -> None:
    store = make_store(window=3600.0, max_samples=50)
    for i in range(500):
        store.put(make_snapshot(time=1_700_000_000.0 - i))  # every sample older than the last
    assert stored_samples(store, "n1") == 50
    assert len(store.history(0)) == 50


def test_latest_history_filters_and_generation(make_store: StoreFactory) -> None:
    store = make_store()
    g0 = store.generation()
    for i in range(3):
        store.put(make_snapshot("a", time=100.0 + i))
        store.put(make_snapshot("b", time=100.0 + i))
    assert store.generation() > g0
    assert sorted((s.node, s.time) for s in store.latest()) == [("a", 102.0), ("b", 102.0)]
    assert [s.time for s in store.history(101.0, 101.0, ["a"])] == [101.0]
    assert store.history(0, nodes=["nope"]) == []
    assert sorted((s.node, s.time) for s in store.history(101.5)) == [("a", 102.0), ("b", 102.0)]
    assert store.latest()[0] == make_snapshot(store.latest()[0].node, time=102.0)  # round trip is lossless


def test_leave_is_cleared_by_a_new_sample(make_store: StoreFactory) -> None:
    store = make_store()
    store.put(make_snapshot("a", time=100.0))
    gen = store.generation()
    store.leave("a", 101.0)
    assert store.departed() == {"a": 101.0}
    assert store.generation() != gen
    assert [s.node for s in store.latest()] == ["a"]  # a departed node is still listed
    store.put(make_snapshot("a", time=102.0))
    assert store.departed() == {}


def test_liveness_is_each_nodes_newest_time_and_interval_and_the_departures(make_store: StoreFactory) -> None:
    store = make_store()
    store.put(make_snapshot("a", time=100.0, interval_s=2.0))
    store.put(make_snapshot("b", time=101.0, interval_s=5.0))
    store.put(make_snapshot("a", time=102.0, interval_s=2.0))
    store.leave("b", 103.0)
    beats = store.liveness()
    assert dict(beats.seen) == {"a": (102.0, 2.0), "b": (101.0, 5.0)}
    assert dict(beats.departed) == {"b": 103.0}
    assert beats == (dict(beats.seen), store.departed())  # the same view latest() and departed() give
