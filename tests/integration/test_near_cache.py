"""The near cache (Redis CLIENT TRACKING), with real redis-server processes: a change made by one process reaches
every other process's near copy; a lost tracking connection, a killed or paused Redis and a FLUSHALL flush it;
a Redis that refuses tracking leaves the cache working without it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clusternb.cache import Cache, FallbackBackend, MemoryBackend, NearCache, RedisBackend
from clusternb.cache.codec import DecodeError, Entry, make_entry
from clusternb.cache.core import key_prefix
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
TTL = 600.0


def _near_cache(url: str, ping_interval: float = 0.2) -> tuple[Cache, RedisBackend, NearCache]:
    redis_backend = RedisBackend(url, socket_timeout=0.3)
    near = NearCache(redis_backend.link, key_prefix(), 1 << 20, ping_interval=ping_interval)
    redis_backend.near = near
    return Cache(FallbackBackend(redis_backend, MemoryBackend())), redis_backend, near


@pytest.fixture
def near_cache(redis_server: RedisServer) -> Iterator[tuple[Cache, RedisBackend, NearCache]]:
    made = _near_cache(redis_server.url)
    yield made
    made[0].close()


def _until(predicate: Callable[[], object], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _gets(server: RedisServer) -> int:
    stats = server.client().info("commandstats").get("cmdstat_get", {})
    return int(stats.get("calls", 0))


def _value(cache: Cache, key: str) -> object:
    entry = cache.backend.get(key)
    return None if entry is None else entry.value_for_caller()


def _kept(cache: Cache, redis_backend: RedisBackend, near: NearCache, key: str, value: object) -> None:
    """Write ``value`` under ``key`` and read it until this process holds a near copy of it. The write's own
    invalidation is awaited first when the tracker is on: arriving late (a loaded machine), it would drop the
    copy under the test's feet."""
    seen = near.invalidations
    redis_backend.set(key, make_entry(value, time.time()), TTL)
    if near.state == "on":
        assert _until(lambda: near.invalidations > seen)
    assert _until(lambda: _value(cache, key) == value and near.get(key) is not None)


READER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[3])
    import redis
    from clusternb.cache import NearCache, RedisBackend
    from clusternb.cache.core import key_prefix

    url, key = sys.argv[1], sys.argv[2]
    backend = RedisBackend(url, socket_timeout=0.3)
    backend.near = near = NearCache(backend.link, key_prefix(), 1 << 20)
    server = redis.Redis.from_url(url)

    def value():
        entry = backend.get(key)
        return None if entry is None else entry.value_for_caller()

    deadline = time.monotonic() + 20
    while not (value() == {"version": 1} and near.get(key) is not None):
        assert time.monotonic() < deadline, "no near copy"
        time.sleep(0.01)
    gets = server.info("commandstats")["cmdstat_get"]["calls"]
    for _ in range(200):
        assert value() == {"version": 1}
    print("near-reads-that-reached-redis", server.info("commandstats")["cmdstat_get"]["calls"] - gets, flush=True)
    print("ready", flush=True)
    sys.stdin.readline()
    while value() != {"version": 2}:
        assert time.monotonic() < deadline + 20, "the change never arrived"
        time.sleep(0.001)
    print("saw", value(), "invalidations", near.invalidations, flush=True)
    backend.close()
    """
)


def test_a_change_in_one_process_reaches_another_process_near_copy(
    redis_server: RedisServer, near_cache: tuple[Cache, RedisBackend, NearCache]
) -> None:
    cache, redis_backend, near = near_cache
    key = cache.key_prefix + "workers:shared"
    redis_backend.set(key, make_entry({"version": 1}, time.time()), TTL)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, redis_server.url, key, str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().split() == ["near-reads-that-reached-redis", "0"]  # served in-process
        assert reader.stdout.readline().strip() == "ready"
        _kept(cache, redis_backend, near, key + ":other", {"mine": True})  # this process tracks too
        redis_backend.set(key, make_entry({"version": 2}, time.time()), TTL)  # the other process has version 1
        reader.stdin.write("go\n")
        reader.stdin.flush()
        out, _ = reader.communicate(timeout=60)
        assert out.startswith("saw {'version': 2} invalidations")
        assert int(out.split()[-1]) >= 1
    finally:
        reader.kill()
    assert _value(cache, key) == {"version": 2}


def test_a_write_by_another_client_and_a_flushall_drop_near_copies(
    redis_server: RedisServer, near_cache: tuple[Cache, RedisBackend, NearCache]
) -> None:
    cache, redis_backend, near = near_cache
    key = cache.key_prefix + "workers:a"
    _kept(cache, redis_backend, near, key, [1, 2, 3])
    raw = redis_server.client()
    raw.set(key, make_entry([4, 5], time.time()).to_bytes(), px=60_000)  # not through clusternb at all
    assert _until(lambda: near.get(key) is None)
    assert _value(cache, key) == [4, 5]

    _kept(cache, redis_backend, near, key, [6])
    flushes = near.flushes
    raw.flushall()
    assert _until(lambda: near.usage() == (0, 0) and near.flushes > flushes)
    assert _value(cache, key) is None


def test_a_read_overtaken_by_a_change_is_not_kept(
    redis_server: RedisServer, near_cache: tuple[Cache, RedisBackend, NearCache]
) -> None:
    cache, redis_backend, near = near_cache
    key = cache.key_prefix + "workers:race"
    _kept(cache, redis_backend, near, key + ":warm", 0)  # the tracker is on
    old = make_entry({"version": 1}, time.time())
    seen = near.invalidations
    redis_backend.set(key, old, TTL)
    assert _until(lambda: near.invalidations > seen)  # this write's own invalidation is behind us
    token = near.begin(key)  # a read of version 1 begins ...
    seen = near.invalidations
    redis_server.client().set(key, make_entry({"version": 2}, time.time()).to_bytes(), px=60_000)
    assert _until(lambda: near.invalidations > seen)  # ... another process writes version 2 meanwhile ...
    near.fill(key, token, old, 60_000)  # ... and the read of version 1 ends: it must not be kept
    assert near.get(key) is None
    assert _value(cache, key) == {"version": 2}


def test_a_lost_tracking_connection_flushes_and_a_reconnect_starts_empty(
    redis_server: RedisServer, near_cache: tuple[Cache, RedisBackend, NearCache]
) -> None:
    cache, redis_backend, near = near_cache
    key = cache.key_prefix + "workers:lost"
    _kept(cache, redis_backend, near, key, {"version": 1})
    raw = redis_server.client()
    tracker = [c["id"] for c in raw.client_list() if c["name"].endswith("-near-cache")]
    assert len(tracker) == 1
    raw.client_kill_filter(_id=tracker[0])
    # Written while the tracker is away: Redis has nobody to tell. The old copy must not survive the reconnect.
    raw.set(key, make_entry({"version": 2}, time.time()).to_bytes(), px=60_000)
    assert _until(lambda: any(c["name"].endswith("-near-cache") and c["id"] != tracker[0] for c in raw.client_list()))
    assert _until(lambda: near.state == "on")
    assert _value(cache, key) == {"version": 2}
    assert near.flushes >= 2  # the loss, and the fresh start


def test_a_killed_redis_flushes_and_the_cache_answers_from_memory(
    redis_server: RedisServer, near_cache: tuple[Cache, RedisBackend, NearCache]
) -> None:
    cache, redis_backend, near = near_cache
    key = cache.key_prefix + "workers:kill"
    _kept(cache, redis_backend, near, key, {"version": 1})
    redis_server.kill()
    assert _until(lambda: near.state == "reconnecting" and near.usage() == (0, 0))
    assert cache.status()["near_cache"] == "reconnecting"
    calls = []
    value, _ = cache.get_or_compute("workers", key, lambda: calls.append(1) or {"version": "memory"})
    assert value == {"version": "memory"} and calls == [1]  # recomputed: the near copy was not served

    redis_server.restart()  # an empty Redis: the key is gone
    assert _until(lambda: near.state == "on")
    assert _until(lambda: _value(cache, key) is None)  # once the link has seen Redis again


def test_a_paused_redis_flushes_the_near_cache(
    redis_server: RedisServer, near_cache: tuple[Cache, RedisBackend, NearCache]
) -> None:
    cache, redis_backend, near = near_cache
    key = cache.key_prefix + "workers:pause"
    _kept(cache, redis_backend, near, key, {"version": 1})
    redis_server.pause()
    try:
        # The tracker's PING after a silence goes unanswered: no copy is vouched for while Redis cannot speak.
        assert _until(lambda: near.state == "reconnecting" and near.usage() == (0, 0))
        assert near.get(key) is None
    finally:
        redis_server.resume()
    assert _until(lambda: near.state == "on")
    assert _until(lambda: _value(cache, key) == {"version": 1})


def test_a_redis_that_refuses_tracking_leaves_the_cache_working(redis_server: RedisServer) -> None:
    admin = redis_server.client()
    admin.acl_setuser("app", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-client|tracking"])
    url = f"redis://app:pw@127.0.0.1:{redis_server.port}/0"
    cache, redis_backend, near = _near_cache(url)
    try:
        key = cache.key_prefix + "workers:refused"
        redis_backend.set(key, make_entry({"version": 1}, time.time()), TTL)
        assert _until(lambda: _value(cache, key) == {"version": 1} and near.state.startswith("refused"))
        assert "pw" not in near.state
        before = _gets(redis_server)
        for _ in range(5):
            assert _value(cache, key) == {"version": 1}
        assert _gets(redis_server) - before == 5  # every read goes to Redis, as without a near cache
        assert cache.status()["near_cache"].startswith("refused")
    finally:
        cache.close()


def test_hits_on_a_near_copy_are_counted_and_give_each_caller_its_own_value(
    redis_server: RedisServer, near_cache: tuple[Cache, RedisBackend, NearCache]
) -> None:
    cache, redis_backend, near = near_cache
    key = cache.key_prefix + "workers:mine"
    _kept(cache, redis_backend, near, key, {"nodes": [{"name": "a", "cpu": 1.0}]})
    stats = cache.stats_for("workers")
    hits = stats.hits
    mine, entry = cache.get_or_compute("workers", key, lambda: pytest.fail("recomputed"))
    assert isinstance(entry, Entry) and near.get(key) is entry
    mine["nodes"][0]["cpu"] = 99.0  # the caller's own copy
    theirs, _ = cache.get_or_compute("workers", key, lambda: pytest.fail("recomputed"))
    assert theirs == {"nodes": [{"name": "a", "cpu": 1.0}]}
    assert stats.hits == hits + 2


def test_the_near_cache_keeps_within_its_bytes(
    redis_server: RedisServer, near_cache: tuple[Cache, RedisBackend, NearCache]
) -> None:
    cache, redis_backend, near = near_cache
    _kept(cache, redis_backend, near, cache.key_prefix + "workers:warm", 0)
    blob = "x" * 50_000
    for i in range(60):  # 3 MB written, 1 MiB allowed
        key = cache.key_prefix + f"workers:{i}"
        redis_backend.set(key, make_entry(blob, time.time()), TTL)
        assert _until(lambda key=key: _value(cache, key) == blob and near.get(key) is not None)
    entries, size = near.usage()
    assert size <= near.max_bytes and 10 <= entries < 60


def test_the_asyncio_path_fills_and_drops_near_copies_and_survives_an_error_reply(
    redis_server: RedisServer, near_cache: tuple[Cache, RedisBackend, NearCache]
) -> None:
    cache, redis_backend, near = near_cache
    key = cache.key_prefix + "workers:async"
    _kept(cache, redis_backend, near, key + ":warm", 0)  # the tracker is on
    raw = redis_server.client()

    async def run() -> None:
        seen = near.invalidations
        await redis_backend.aset(key, make_entry({"version": 1}, time.time()), TTL)
        deadline = time.monotonic() + 15
        while near.invalidations == seen:  # the write's own invalidation, before the read it would overtake
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        entry = await redis_backend.aget(key)
        assert entry is not None and entry.value_for_caller() == {"version": 1}
        assert near.get(key) is entry  # kept by the asyncio read (GET and PTTL in one round trip)
        raw.set(key, make_entry({"version": 2}, time.time()).to_bytes(), px=60_000)
        while near.get(key) is not None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        entry = await redis_backend.aget(key)
        assert entry is not None and entry.value_for_caller() == {"version": 2}

        raw.delete(key + ":list")
        raw.rpush(key + ":list", b"x")  # another program's key of the wrong type: GET answers an error
        with pytest.raises(DecodeError):
            await redis_backend.aget(key + ":list")
        entry = await redis_backend.aget(key)  # the connection is still in step: the right reply to the right GET
        assert entry is not None and entry.value_for_caller() == {"version": 2}
        await redis_backend.aclose()

    asyncio.run(run())


def test_a_copy_is_not_served_while_its_invalidation_is_being_read(
    redis_server: RedisServer, near_cache: tuple[Cache, RedisBackend, NearCache]
) -> None:
    """The tracker thread may have taken an invalidation off the socket and not applied it yet (it waits for
    the GIL behind a busy thread). Held here by the near cache's own lock, which applying it needs: the socket
    is empty, the copy still there, and it must not be served."""
    cache, redis_backend, near = near_cache
    key = cache.key_prefix + "workers:held"
    _kept(cache, redis_backend, near, key, {"version": 1})
    with near._lock:
        redis_server.client().set(key, make_entry({"version": 2}, time.time()).to_bytes(), px=60_000)
        deadline = time.monotonic() + 15
        while not near._reading:  # the tracker has read the invalidation and waits to apply it
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert near.get(key) is None
    assert _until(lambda: _value(cache, key) == {"version": 2})
