"""A holder's queries (a panel's): a held result stands while nothing it read changed, and a held metrics frame is
extended by the new samples into exactly what a recompute gives. Computations are counted by the cache's own
``loads``; the store is a real MemoryStateStore the test writes into, with no local sampler."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pandas as pd
import pytest

from clusternb import held as held_results
from clusternb.config import load_config
from clusternb.queries import Client, QueryResult
from clusternb.state.base import Liveness
from clusternb.state.memory import MemoryStateStore
from tests.helpers import make_snapshot

FIELDS = ("cpu_percent", "mem_used_percent", "net_rx_bps")


def make_client(**settings: float) -> Client:
    # A 0.05 s freshness bucket: every plain query below would be a new key, and so a recompute.
    values = {"interval": 0.05, "stale_after": 3600.0, "offline_after": 7200.0, **settings}
    return Client(load_config(**values), store=MemoryStateStore(), sample_local=False)


@pytest.fixture
def client() -> Iterator[Client]:
    c = make_client()
    now = time.time()
    for t in range(20):
        for n in range(4):
            c.store.put(make_snapshot(f"n{n}", time=now - 40 + 2 * t + 0.01 * n, cpu_percent=float(n + t)))
    yield c
    c.close()


def loads(client: Client, name: str) -> int:
    return client.cache.stats_for(name).loads


def hold(client: Client, name: str, held: QueryResult | None = None, **params: object) -> QueryResult:
    return client.query(name, held=held, holding=True, **params)


@pytest.mark.parametrize(("name", "params"), [("workers", {}), ("cluster", {}), ("alerts", {"active": True})])
def test_a_held_result_is_not_recomputed_while_nothing_it_read_changed(
    client: Client, name: str, params: dict[str, object]
) -> None:
    first = hold(client, name, **params)
    computed = loads(client, name)
    for _ in range(3):
        time.sleep(0.06)  # a new freshness bucket each time: a plain query recomputes ...
        assert hold(client, name, first, **params) is first  # ... a holder keeps what it holds
    assert loads(client, name) == computed
    client.query(name, **params)  # every other caller still gets ages as fresh as the bucket
    assert loads(client, name) > computed
    # A new sample (for alerts: one that fires an alert): recomputed, for holders too.
    client.store.put(snap := make_snapshot("n9", time=time.time(), disk_used_bytes=99 * 2**30))
    client.alerting.on_sample(snap)
    after = hold(client, name, first, **params)
    assert after is not first
    assert loads(client, name) > computed + 1


def test_a_held_workers_frame_is_recomputed_when_a_node_turns_stale() -> None:
    client = make_client(stale_after=0.3, offline_after=60.0)
    try:
        client.store.put(make_snapshot("n0", time=time.time()))
        first = hold(client, "workers")
        assert list(first.value["status"]) == ["online"]
        assert isinstance(first.basis, held_results.Standing) and first.basis.until < time.time() + 0.35
        time.sleep(0.4)
        later = hold(client, "workers", first)
        assert list(later.value["status"]) == ["stale"]
    finally:
        client.close()


def test_an_acknowledgement_reaches_a_held_alerts_result(client: Client) -> None:
    client.store.put(snap := make_snapshot("n0", time=time.time(), disk_used_bytes=99 * 2**30))
    client.alerting.on_sample(snap)  # disk_critical fires at once
    first = hold(client, "alerts", active=True)
    alert_id = first.value["alert_id"].iloc[0]
    client.acknowledge(alert_id)
    after = hold(client, "alerts", first, active=True)
    assert after is not first
    assert bool(after.value.set_index("alert_id").loc[alert_id, "acknowledged"])


def test_next_status_change_is_the_first_threshold_crossed() -> None:
    def thresholds(interval: float) -> tuple[float, float]:
        return 2 * interval, 3 * interval

    seen = {"a": (100.0, 1.0), "b": (90.0, 10.0), "gone": (50.0, 1.0), "off": (10.0, 1.0)}
    liveness = Liveness(seen, {"gone": 60.0})
    assert held_results.next_status_change(liveness, thresholds, 101.0) == 102.0  # a turns stale at 102
    assert held_results.next_status_change(liveness, thresholds, 102.5) == 103.0  # ... and offline at 103
    assert held_results.next_status_change(liveness, thresholds, 104.0) == 110.0  # b stale at 110
    assert held_results.next_status_change(liveness, thresholds, 121.0) == float("inf")


def full(client: Client, since: object = "15m", node: object = None) -> pd.DataFrame:
    """A recompute now (a cached metrics frame may stand 30 s for other callers)."""
    client.cache.invalidate("metrics")
    return client.metrics(since=since, fields=FIELDS, node=node)


def test_a_held_metrics_frame_extended_equals_a_recompute(client: Client) -> None:
    held = hold(client, "metrics", since="15m", fields=FIELDS)
    now = time.time()
    steps = [
        [("n0", now)],  # one node sent a sample
        [("n1", now + 0.5), ("n2", now + 0.6), ("n7", now + 0.7)],  # several, and a node never seen
        [("n3", now - 1.0)],  # late: older than samples of other nodes already held
        [],  # nothing new
    ]
    for step in steps:
        for node, at in step:
            client.store.put(make_snapshot(node, time=at, cpu_percent=42.0, net_rx_bps=7.0))
        before = loads(client, "metrics")
        after = hold(client, "metrics", held, since="15m", fields=FIELDS)
        assert loads(client, "metrics") == before  # extended, not recomputed
        pd.testing.assert_frame_equal(after.value, full(client))
        assert (after is held) == (not step)
        assert (after.content_hash == held.content_hash) == (not step)
        held = after


def test_a_held_metrics_frame_loses_the_rows_that_left_its_window() -> None:
    client = make_client()
    try:
        now = time.time()
        for age in (9.5, 8.0, 5.0, 1.0):
            client.store.put(make_snapshot("n0", time=now - age))
        held = hold(client, "metrics", since=10, fields=FIELDS)
        assert len(held.value) == 4
        time.sleep(0.6)  # the sample 9.5 s old leaves the 10 s window; nothing is written
        after = hold(client, "metrics", held, since=10, fields=FIELDS)
        assert len(after.value) == 3 and after.content_hash != held.content_hash
        pd.testing.assert_frame_equal(after.value, full(client, since=10))
    finally:
        client.close()


def test_a_held_metrics_frame_of_some_nodes_takes_only_theirs(client: Client) -> None:
    held = hold(client, "metrics", since="15m", fields=FIELDS, node=["n1", "n2"])
    assert hold(client, "metrics", held, since="15m", fields=FIELDS, node=["n1", "n2"]) is held
    client.store.put(make_snapshot("n0", time=time.time()))
    after = hold(client, "metrics", held, since="15m", fields=FIELDS, node=["n1", "n2"])
    pd.testing.assert_frame_equal(after.value, held.value)
    client.store.put(make_snapshot("n2", time=time.time()))
    after = hold(client, "metrics", held, since="15m", fields=FIELDS, node=["n1", "n2"])
    pd.testing.assert_frame_equal(after.value, full(client, node=["n1", "n2"]))


def test_a_metrics_query_past_the_raw_window_is_not_extended(client: Client) -> None:
    held = hold(client, "metrics", since="15m", until="1m", fields=FIELDS)
    assert held.basis is None  # an end: recomputed through the cache as before


def extend_and_compare(client: Client, held: QueryResult, node: object = None) -> QueryResult:
    after = hold(client, "metrics", held, since="15m", fields=FIELDS, node=node)
    pd.testing.assert_frame_equal(after.value, full(client, node=node))
    return after


@pytest.mark.parametrize("node", [None, ["n1", "n3"]])
def test_a_held_metrics_frame_takes_the_samples_that_came_late(client: Client, node: object) -> None:
    held = hold(client, "metrics", since="15m", fields=FIELDS, node=node)
    now = time.time()
    # n1 writes a late sample, then one on time, between two reads.
    client.store.put(make_snapshot("n1", time=now - 10.5, cpu_percent=7.0))
    client.store.put(make_snapshot("n1", time=now + 1, cpu_percent=8.0))
    held = extend_and_compare(client, held, node)
    # A backlog flushed: samples of n3 older than the newest of it held.
    for age in (30.5, 20.5):
        client.store.put(make_snapshot("n3", time=now - age, cpu_percent=99.0))
    held = extend_and_compare(client, held, node)
    # n3's clock steps back a minute: its new samples are all older than the newest of it held ...
    for step in range(3):
        client.store.put(make_snapshot("n3", time=now - 60 + step, cpu_percent=50.0 + step))
        held = extend_and_compare(client, held, node)
    # ... and n1 again, once more between two reads.
    client.store.put(make_snapshot("n1", time=now - 9.5, cpu_percent=7.0))
    client.store.put(make_snapshot("n1", time=now + 2, cpu_percent=8.0))
    held = extend_and_compare(client, held, node)


def test_a_held_metrics_frame_of_a_node_with_two_writers_equals_a_recompute(client: Client) -> None:
    held = hold(client, "metrics", since="15m", fields=FIELDS)
    now = time.time()
    for step in range(4):  # two writers of n0, one's clock half a second behind the other's, read in between
        client.store.put(make_snapshot("n0", time=now + step, cpu_percent=1.0))
        held = extend_and_compare(client, held)
        client.store.put(make_snapshot("n0", time=now + step - 0.5, cpu_percent=2.0))
        held = extend_and_compare(client, held)
    assert len(held.value) == 80 + 8


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        ("alerts", {"active": True}, {"active": False}),
        ("workers", {}, None),
        ("metrics", {"since": "15m", "fields": ["cpu_percent"]}, {"since": "15m", "fields": ["net_rx_bps"]}),
        ("metrics", {"since": "1m", "fields": FIELDS}, {"since": "10m", "fields": FIELDS}),
    ],
)
def test_a_held_result_is_never_given_for_another_query(
    client: Client, name: str, first: dict[str, object], second: dict[str, object] | None
) -> None:
    client.store.put(snap := make_snapshot("n0", time=time.time() - 120, disk_used_bytes=99 * 2**30))
    client.alerting.on_sample(snap)
    client.store.put(make_snapshot("n0", time=time.time(), disk_used_bytes=1))  # resolved: only active=False shows it
    client.alerting.on_sample(make_snapshot("n0", time=time.time(), disk_used_bytes=1))
    other = "cluster" if second is None else name
    held = hold(client, name, **first)
    after = hold(client, other, held, **(second or {}))
    assert after is not held
    client.cache.invalidate(other)
    fresh = client.query(other, **(second or {})).value
    if name == "metrics":
        pd.testing.assert_frame_equal(after.value, fresh)
    else:  # ages aside
        assert list(after.value.columns) == list(fresh.columns) and len(after.value) == len(fresh)


def test_a_standing_result_stands_a_bounded_time() -> None:
    # Past the offline edge no node's status can change, but the records it read may expire in Redis without
    # a new generation: a recompute must still come.
    client = make_client(stale_after=0.1, offline_after=0.2)
    try:
        client.store.put(make_snapshot("n0", time=time.time() - 1))
        first = hold(client, "workers")
        assert list(first.value["status"]) == ["offline"]
        assert isinstance(first.basis, held_results.Standing)
        bound = first.created + held_results.STAND_INTERVALS * client.settings.interval
        assert first.basis.until <= bound
        while time.time() <= first.basis.until:
            time.sleep(0.05)
        assert hold(client, "workers", first) is not first
    finally:
        client.close()
