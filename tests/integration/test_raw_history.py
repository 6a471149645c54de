"""Raw history in Redis as compact records (issue 17 item 2): written under the new key, read back as the same
snapshots, the previous version's JSON key still read, and hostile compact records skipped, counted and pruned.
"""

from __future__ import annotations

import zlib

import orjson
import pytest

from clusternb.state import raw_codec
from clusternb.state.bounds import HistoryBounds
from clusternb.state.redis import RedisStateStore
from tests.helpers import make_gpu, make_snapshot
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_server: RedisServer) -> RedisStateStore:
    made = RedisStateStore(redis_server.url, socket_timeout=5.0)
    yield made  # type: ignore[misc]
    made.close()


def test_compact_records_round_trip_and_are_small(redis_server: RedisServer, store: RedisStateStore) -> None:
    snaps = [
        make_snapshot("n", time=100.0 + i, cpu_percent=i * 0.7, gpus=(make_gpu(0),) * (i % 2), labels={"k": "v"})
        for i in range(50)
    ]
    for snap in snaps:
        store.put(snap)
    assert store.history(0, nodes=["n"]) == snaps  # the same snapshots, in time order
    raw = redis_server.client()
    stored = raw.zrange(store.hist_key("n"), 0, -1)
    assert all(r.startswith(raw_codec.PACKED) for r in stored)
    json_size = sum(len(orjson.dumps(s.to_dict())) for s in snaps)
    assert sum(map(len, stored)) < json_size / 2.5  # measured: about a third
    assert not raw.exists(store.legacy_hist_key("n"))  # the old key is never written


def test_the_previous_versions_json_history_is_still_read(redis_server: RedisServer, store: RedisStateStore) -> None:
    old = [make_snapshot("n", time=100.0 + i) for i in range(3)]
    raw = redis_server.client()
    raw.zadd(store.legacy_hist_key("n"), {orjson.dumps(s.to_dict()): s.time for s in old})  # an older agent's
    new = make_snapshot("n", time=103.0)
    store.put(new)
    assert sorted(store.history(0, nodes=["n"]), key=lambda s: s.time) == [*old, new]
    assert store.rejections.total == 0


def test_hostile_compact_records_are_skipped_counted_and_pruned(
    redis_server: RedisServer, store: RedisStateStore
) -> None:
    store.put(make_snapshot("n", time=100.0))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, raw_codec.ZDICT_1)
    bomb = raw_codec.PACKED + deflate.compress(b" " * 50_000_000) + deflate.flush()
    good = raw_codec.pack(orjson.dumps(make_snapshot("n", time=101.0).to_dict()))
    absurd = raw_codec.pack(orjson.dumps({**make_snapshot("n", time=102.0).to_dict(), "cpu_percent": 1e9}))
    hostile = {
        raw_codec.PACKED + b"not deflate at all": 101.5,
        bomb: 101.6,
        good[:-3]: 101.7,  # truncated
        good + b"trailing": 101.8,
        absurd: 102.0,
        raw_codec.PACKED + zlib.compress(b"[1, 2]")[2:-4]: 102.5,  # inflates, but to no snapshot
    }
    raw = redis_server.client()
    raw.zadd(store.hist_key("n"), hostile)
    assert [s.time for s in store.history(0, nodes=["n"])] == [100.0]
    reasons = {reason for kind, node, reason in store.rejections.counts() if kind == "history"}
    assert "compact record does not inflate" in reasons
    assert "compact record is truncated, too large or followed by garbage" in reasons
    assert any("cpu_percent" in r for r in reasons) and "not a snapshot" in reasons
    assert store.rejections.total == len(hostile)
    assert raw.zcard(store.hist_key("n")) == 1  # pruned: only the good sample is left


def test_a_key_past_its_read_budget_is_read_newest_first_and_its_excess_pruned(redis_server: RedisServer) -> None:
    """Every record valid, but their inflated bytes beyond ``max_samples * RECORD_BUDGET``: the newest are read,
    the older ones counted and pruned, so a hostile key cannot make a reader hold gigabytes."""
    small = RedisStateStore(redis_server.url, HistoryBounds(window=1e9, max_samples=10), socket_timeout=5.0)
    long = "x" * 200
    gpus = tuple(make_gpu(i, name=long, uuid=f"{long}-{i}") for i in range(64))
    large = [make_snapshot("n", time=50.0 + i, gpus=gpus) for i in range(5)]
    assert all(raw_codec.RECORD_BUDGET * 10 // 2 < len(orjson.dumps(s.to_dict())) < raw_codec.MAX_RECORD for s in large)
    for i in range(10):
        small.put(make_snapshot("n", time=100.0 + i))
    raw = redis_server.client()  # after the puts: the writer trims its key to max_samples
    raw.zadd(small.hist_key("n"), {raw_codec.pack(orjson.dumps(s.to_dict())): s.time for s in large})
    assert [s.time for s in small.history(0, nodes=["n"])] == [100.0 + i for i in range(10)]
    assert small.rejections.total == len(large)
    assert raw.zcard(small.hist_key("n")) == 10
    small.close()


def test_a_record_inflating_past_64_kib_is_rejected(store: RedisStateStore, redis_server: RedisServer) -> None:
    store.put(make_snapshot("n", time=100.0))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, raw_codec.ZDICT_1)
    big = raw_codec.PACKED + deflate.compress(b" " * 100_000) + deflate.flush()
    assert len(big) < 300
    redis_server.client().zadd(store.hist_key("n"), {big: 99.0})
    assert [s.time for s in store.history(0, nodes=["n"])] == [100.0]
    reasons = {reason for kind, _, reason in store.rejections.counts() if kind == "history"}
    assert reasons == {"compact record is truncated, too large or followed by garbage"}
