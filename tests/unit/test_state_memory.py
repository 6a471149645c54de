"""The memory state store keeps the latest per node and a history bounded by its window."""

from __future__ import annotations

import tracemalloc

from clusternb.state.memory import MemoryStateStore
from tests.helpers import make_snapshot


def test_ten_thousand_samples_stay_within_the_window() -> None:
    store = MemoryStateStore(window=600.0)
    t0 = 1_700_000_000.0
    tracemalloc.start()
    traced = []
    for i in range(10_000):
        store.put(make_snapshot(time=t0 + i))
        if i in (4_999, 9_999):  # both well past the window: the store should hold the same amount
            traced.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    assert store.sample_count() == 601  # samples from t-600 s to t, inclusive
    history = store.history(since=0)
    assert min(s.time for s in history) == t0 + 10_000 - 1 - 600
    grown = traced[1] - traced[0]
    assert grown < 10_000, f"store grew by {grown} bytes over its last 5,000 samples"


def test_hard_cap_holds_even_when_the_clock_jumps_back() -> None:
    store = MemoryStateStore(window=3600.0, max_samples=50)
    for i in range(500):
        store.put(make_snapshot(time=1_700_000_000.0 - i))  # every sample older than the last
    assert store.sample_count() == 50


def test_latest_history_filters_and_generation() -> None:
    store = MemoryStateStore()
    g0 = store.generation()
    for i in range(3):
        store.put(make_snapshot("a", time=100.0 + i))
        store.put(make_snapshot("b", time=100.0 + i))
    assert store.generation() > g0
    assert sorted((s.node, s.time) for s in store.latest()) == [("a", 102.0), ("b", 102.0)]
    assert [s.time for s in store.history(101.0, 101.0, ["a"])] == [101.0]
    assert store.history(0, nodes=["nope"]) == []


def test_leave_is_cleared_by_a_new_sample() -> None:
    store = MemoryStateStore()
    store.put(make_snapshot("a", time=100.0))
    gen = store.generation()
    store.leave("a", 101.0)
    assert store.departed() == {"a": 101.0}
    assert store.generation() != gen
    store.put(make_snapshot("a", time=102.0))
    assert store.departed() == {}
