"""One behavioural suite for the query cache, run against the memory backend and a real redis-server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from clusternb import frames
from clusternb.cache import Cache, FallbackBackend, MemoryBackend, RedisBackend, cached
from tests.helpers import make_snapshot
from tests.redis_server import RedisServer


def make_cache(kind: str, server: RedisServer | None, **kwargs: object) -> Cache:
    if kind == "memory":
        return Cache(MemoryBackend(), **kwargs)  # type: ignore[arg-type]
    assert server is not None
    return Cache(FallbackBackend(RedisBackend(server.url, socket_timeout=0.2), MemoryBackend()), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> Iterator[Cache]:
    server = request.getfixturevalue("redis_server") if request.param == "redis" else None
    c = make_cache(request.param, server, ttls={"fast": 0.2})
    yield c
    c.close()


def _frame() -> pd.DataFrame:
    return frames.workers_frame([make_snapshot("a", time=100.0)], 101.0, lambda i: (2 * i, 3 * i))


def test_hit_after_miss_and_stats(cache: Cache) -> None:
    calls = []

    @cached("ns", cache=cache)
    def double(x: int) -> int:
        calls.append(x)
        return x * 2

    assert [double(2), double(2), double(3), double(2)] == [4, 4, 6, 4]
    assert calls == [2, 3]
    stats = cache.stats["ns"]
    assert (stats.hits, stats.misses, stats.loads) == (2, 2, 2)
    assert stats.hit_rate == 0.5


@pytest.mark.parametrize("value", [None, [], {}, "", 0])
def test_cached_none_and_empty_values_are_hits(cache: Cache, value: object) -> None:
    calls = []

    @cached("empty", cache=cache)
    def nothing() -> object:
        calls.append(1)
        return value

    assert nothing() == value and nothing() == value
    assert len(calls) == 1 and cache.stats["empty"].hits == 1


def test_empty_frame_is_a_hit_and_keeps_its_schema(cache: Cache) -> None:
    @cached("frames", cache=cache)
    def no_alerts() -> pd.DataFrame:
        return frames.empty_alerts_frame()

    first, second = no_alerts(), no_alerts()
    assert cache.stats["frames"].hits == 1
    pd.testing.assert_frame_equal(second, frames.empty_alerts_frame())
    pd.testing.assert_frame_equal(first, second)


def test_frames_round_trip_and_callers_cannot_corrupt_the_cache(cache: Cache) -> None:
    @cached("frames", cache=cache)
    def workers() -> pd.DataFrame:
        return _frame()

    first = workers()
    first.loc["a", "cpu_percent"] = -1.0
    second = workers()
    pd.testing.assert_frame_equal(second, _frame())
    second["status"] = "offline"
    pd.testing.assert_frame_equal(workers(), _frame())

    @cached("json", cache=cache)
    def nested() -> dict[str, list[int]]:
        return {"a": [1]}

    nested()["a"].append(2)
    assert nested() == {"a": [1]}


def _records() -> dict[str, Any]:
    return {"workers": [{"node": f"n{i}", "cpu": {"load": [0.5, 0.4]}, "labels": {"rack": "r1"}} for i in range(3)]}


def test_a_caller_mutating_nested_values_or_frame_columns_never_changes_the_next_callers(cache: Cache) -> None:
    @cached("records", cache=cache)
    def records() -> dict[str, Any]:
        return _records()

    for _ in range(3):  # the miss's value, then hits (in Redis: the first reader's fresh decode, then the others)
        mine = records()
        mine["workers"][0]["cpu"]["load"].append(9.9)
        mine["workers"][1]["labels"]["rack"] = "changed"
        mine["workers"].pop()
        assert records() == _records()

    @cached("frames", cache=cache)
    def workers() -> pd.DataFrame:
        return _frame()

    for _ in range(3):
        frame = workers()
        frame.loc["a", "cpu_percent"] = -1.0
        frame.loc["a", "cpu_count"] = 99  # an Int64 (masked extension) column
        frame["host"] = "changed"
        frame.index.name = "changed"
        pd.testing.assert_frame_equal(workers(), _frame())


def test_share_true_hands_every_memory_hit_one_object(cache: Cache) -> None:
    calls = []

    @cached("shared", cache=cache, share=True)
    def records() -> dict[str, Any]:
        calls.append(1)
        return _records()

    @cached("shared-frame", cache=cache, share=True)
    def workers() -> pd.DataFrame:
        return _frame()

    records()  # the miss: the function's own value
    first, second = records(), records()
    assert first == second == _records() and len(calls) == 1
    assert (first is second) is (cache.backend.active.name == "memory")  # a Redis hit decodes its own value
    pd.testing.assert_frame_equal(workers(), _frame())
    assert (workers() is workers()) is (cache.backend.active.name == "memory")
    cache.get_or_compute("shared", "k", _records, share=True)  # the miss
    value, _ = cache.get_or_compute("shared", "k", _records, share=True)
    again, _ = cache.get_or_compute("shared", "k", _records, share=True)
    assert value == again == _records() and (value is again) is (cache.backend.active.name == "memory")
    if cache.backend.active.name == "memory":  # the one shared JSON value refuses changes
        with pytest.raises(TypeError):
            first["workers"][0]["labels"]["rack"] = "changed"
        assert records() == _records()


def test_share_must_be_a_bool(cache: Cache) -> None:
    with pytest.raises(TypeError):
        cached("ns", cache=cache, share="yes")  # type: ignore[arg-type]


def test_ttl_expires(cache: Cache) -> None:
    calls = []

    @cached("fast", cache=cache)  # ttl 0.2 s from the fixture
    def now() -> int:
        calls.append(1)
        return len(calls)

    assert now() == 1 and now() == 1
    deadline = time.monotonic() + 10
    while now() == 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(calls) == 2


def test_namespaces_arguments_and_versions_never_collide(cache: Cache) -> None:
    @cached("one", cache=cache)
    def f(x: object = None) -> str:
        return f"one:{x!r}"

    @cached("two", cache=cache)
    def g(x: object = None) -> str:
        return f"two:{x!r}"

    assert f(1) == "one:1" and g(1) == "two:1"
    assert f("1") == "one:'1'" and f(x=1) == "one:1" and f([1]) == "one:[1]" and f((1,)) == "one:(1,)"
    assert f(1) == "one:1"  # still the first entry

    other_version = Cache(cache.backend)
    other_version.key_prefix = cache.key_prefix.replace(":cache:v1:", ":cache:v1:9.9.9-")
    assert other_version.namespace_prefix("one") != cache.namespace_prefix("one")


def test_invalidate_one_namespace(cache: Cache) -> None:
    counts = {"a": 0, "b": 0}

    @cached("a", cache=cache)
    def fa() -> int:
        counts["a"] += 1
        return counts["a"]

    @cached("b", cache=cache)
    def fb() -> int:
        counts["b"] += 1
        return counts["b"]

    fa(), fb()
    assert cache.invalidate("a") == 1
    assert (fa(), fb()) == (2, 1)
    with pytest.raises(ValueError, match="namespace"):
        cache.invalidate("bad:name")


def test_uncacheable_values_are_returned_and_counted(cache: Cache) -> None:
    marker = object()

    @cached("odd", cache=cache)
    def odd() -> object:
        return marker

    assert odd() is marker and odd() is marker
    assert cache.stats["odd"].errors == 2 and cache.stats["odd"].loads == 2


def test_exceptions_propagate_and_are_not_cached(cache: Cache) -> None:
    calls = []

    @cached("boom", cache=cache)
    def boom() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("first call fails")
        return 7

    with pytest.raises(KeyError):
        boom()
    assert boom() == 7


def test_token_makes_a_new_entry(cache: Cache) -> None:
    generation = [0]

    @cached("tok", cache=cache, token=lambda: generation[0])
    def read() -> int:
        return generation[0]

    assert read() == 0
    generation[0] = 1
    assert read() == 1


def test_content_hash_changes_only_with_content(cache: Cache) -> None:
    value = {"cpu": 1}

    @cached("hash", cache=cache, token=lambda: value["cpu"])
    def status() -> dict[str, int]:
        return dict(value)

    _, e1 = status.with_entry()  # type: ignore[attr-defined]
    _, e2 = status.with_entry()  # type: ignore[attr-defined]
    value["cpu"] = 2
    _, e3 = status.with_entry()  # type: ignore[attr-defined]
    assert e1.content_hash == e2.content_hash != e3.content_hash


def test_status_frame(cache: Cache) -> None:
    @cached("workers", cache=cache)
    def w() -> int:
        return 1

    w(), w()
    df = cache.status_frame()
    # every configured namespace is listed, used here or not (another process may have filled it)
    assert list(df.index) == ["(all)", *sorted({"workers", *cache.ttls})]
    assert df.loc["workers", "hits"] == 1 and df.loc["workers", "entries"] == 1
    assert df.loc["workers", "bytes"] > 0 and df.loc["workers", "mean_get_us"] > 0
    assert df.loc["(all)", "backend"] in ("memory", "redis")


@pytest.mark.asyncio
async def test_async_decorator(cache: Cache) -> None:
    calls = []

    @cached("async", cache=cache)
    async def fetch(x: int) -> dict[str, int]:
        calls.append(x)
        await asyncio.sleep(0)
        return {"x": x}

    assert await fetch(1) == {"x": 1}
    assert await fetch(1) == {"x": 1}
    assert calls == [1] and cache.stats["async"].hits == 1
    await cache.aclose()  # this loop's Redis connection closes with the loop


def test_32_threads_missing_one_key_compute_once(cache: Cache) -> None:
    calls = []
    barrier = threading.Barrier(32)

    @cached("flight", cache=cache)
    def slow() -> dict[str, int]:
        calls.append(1)
        time.sleep(0.3)
        return {"answer": 42}

    results: list[object] = []

    def worker() -> None:
        barrier.wait()
        results.append(slow())

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert results == [{"answer": 42}] * 32


@pytest.mark.asyncio
async def test_32_tasks_missing_one_key_compute_once(cache: Cache) -> None:
    calls = []

    @cached("aflight", cache=cache)
    async def slow() -> list[int]:
        calls.append(1)
        await asyncio.sleep(0.3)
        return [42]

    results = await asyncio.gather(*(slow() for _ in range(32)))
    assert len(calls) == 1
    assert results == [[42]] * 32
    results[0].append(0)  # each task got its own copy
    assert results[1] == [42]
    await cache.aclose()


@pytest.mark.asyncio
async def test_failed_async_leader_fails_its_followers(cache: Cache) -> None:
    @cached("afail", cache=cache)
    async def fails() -> int:
        await asyncio.sleep(0.1)
        raise RuntimeError("nope")

    outcomes = await asyncio.gather(*(fails() for _ in range(4)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    await cache.aclose()


def test_a_failed_clear_is_counted_in_the_totals_not_as_a_namespace_named_all(redis_server: RedisServer) -> None:
    """A clear() error was recorded under a namespace called "(all)", which then replaced the totals row: the
    dashboard's cache card read "hit rate 0 %, 0 entries" after one failed clear."""
    cache = Cache(RedisBackend(redis_server.url, socket_timeout=0.2))

    @cached("workers", cache=cache)
    def w() -> int:
        return 1

    w(), w()
    redis_server.kill()
    assert cache.clear() == 0  # refused: counted as an error, not raised
    df = cache.status_frame()
    assert list(df.index).count("(all)") == 1
    assert df.loc["(all)", "hits"] == 1 and df.loc["(all)", "errors"] >= 1
    cache.close()


def test_a_new_token_deletes_the_entry_of_the_old_one(redis_server: RedisServer) -> None:
    """What the queries' lineages do (test_queries_cache), the decorator's token does too: an entry no call
    can reach again leaves Redis at once instead of living out its TTL."""
    cache = Cache(FallbackBackend(RedisBackend(redis_server.url), MemoryBackend()), default_ttl=3600)
    generation = [0]

    @cached("tokened", cache=cache, token=lambda: generation[0])
    def square(x: int) -> int:
        return x * x

    raw = redis_server.client()
    prefix = cache.namespace_prefix("tokened")
    for g in range(4):
        generation[0] = g
        assert square(3) == 9 and square(4) == 16
    keys = [k for k in raw.scan_iter(match=prefix + "*") if not k.endswith(b":lease")]
    assert len(keys) == 2 and all(k.endswith(b":3") for k in keys), keys  # one per argument, of the last token
    cache.close()
