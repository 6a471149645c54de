"""Faults caused for real: Redis killed, restarted, paused, full, filled with garbage. Every call answers."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusternb.cache import Cache, FallbackBackend, MemoryBackend, RedisBackend, cached
from clusternb.cache.codec import entry_from_bytes, make_entry
from tests.redis_server import RedisServer

TIMEOUT = 0.2


@pytest.fixture
def cache(redis_server: RedisServer) -> Iterator[Cache]:
    c = Cache(FallbackBackend(RedisBackend(redis_server.url, socket_timeout=TIMEOUT), MemoryBackend()))
    yield c
    c.close()


def _wait_for(predicate: object, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_sigkill_mid_loop_then_restart(
    cache: Cache, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    @cached("loop", cache=cache)
    def square(x: int) -> int:
        return x * x

    caplog.set_level(logging.WARNING, logger="clusternb")
    for i in range(200):
        if i == 50:
            redis_server.kill()
        assert square(i % 20) == (i % 20) ** 2  # every call answers, before, during and after the outage
    status = cache.status()
    assert status["backend"] == "memory" and status["redis_state"] == "unreachable"
    assert status["fallbacks"] == 1 and status["last_failure"] is not None
    assert cache.status_frame().loc["(all)", "backend"] == "memory"
    outage_lines = [r for r in caplog.records if "serving from memory" in r.getMessage()]
    assert len(outage_lines) == 1  # logged once, not once per call

    redis_server.restart()
    assert _wait_for(lambda: (square(3), cache.status()["backend"])[1] == "redis")
    status = cache.status()
    assert status["redis_state"] == "connected" and status["last_recovery"] >= status["last_failure"]
    square(7)
    assert any(k.startswith(b"clusternb:cache:") for k in redis_server.client().keys("*"))  # written to Redis again


def test_paused_redis_costs_one_timeout_then_memory(cache: Cache, redis_server: RedisServer) -> None:
    @cached("pause", cache=cache)
    def ident(x: int) -> int:
        return x

    ident(1)
    redis_server.pause()  # SIGSTOP: the socket stays open, nothing answers
    try:
        durations = []
        for i in range(20):
            start = time.monotonic()
            assert ident(i) == i
            durations.append(time.monotonic() - start)
        # The first call waits for the socket timeout; after the switch, calls no longer wait on Redis.
        # Bounds are generous multiples of the 0.2 s timeout: they prove "bounded", not "fast".
        assert max(durations) < TIMEOUT + 2.0
        assert sum(durations[1:]) < TIMEOUT * 5
        assert cache.status()["backend"] == "memory"
        assert "TimeoutError" in (cache.status()["last_failure_reason"] or "")
    finally:
        redis_server.resume()
    assert _wait_for(lambda: (ident(5), cache.status()["backend"])[1] == "redis")


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def test_garbage_and_pickles_are_misses_and_never_executed(
    cache: Cache, redis_server: RedisServer, tmp_path: Path
) -> None:
    calls = []

    @cached("poison", cache=cache)
    def value(name: str) -> dict[str, str]:
        calls.append(name)
        return {"name": name}

    value("a"), value("b")
    keys = sorted(k for k in redis_server.client().keys("*") if b":poison:" in k)
    assert len(keys) == 2
    marker = tmp_path / "pwned"
    raw = redis_server.client()
    raw.set(keys[0], os.urandom(200))
    raw.set(keys[1], pickle.dumps(_Exploit(str(marker))))
    errors_before = cache.stats["poison"].errors
    assert value("a") == {"name": "a"} and value("b") == {"name": "b"}
    assert not marker.exists()  # the pickle was never loaded
    assert cache.stats["poison"].errors == errors_before + 2
    assert calls == ["a", "b", "a", "b"]  # each poisoned entry was a miss, recomputed and rewritten
    assert value("a") == {"name": "a"} and calls == ["a", "b", "a", "b"]  # and is a hit again


def test_foreign_key_of_another_type_is_a_miss(cache: Cache, redis_server: RedisServer) -> None:
    @cached("typed", cache=cache)
    def one() -> int:
        return 1

    one()
    (key,) = [k for k in redis_server.client().keys("*") if b":typed:" in k]
    redis_server.client().delete(key)
    redis_server.client().rpush(key, b"a list, not a string")
    assert one() == 1
    assert cache.stats["typed"].errors >= 1 and cache.status()["backend"] == "redis"


def test_full_redis_refusing_writes_still_answers(cache: Cache, redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.config_set("maxmemory", "1")  # any write is refused with OOM (noeviction)
    client.config_set("maxmemory-policy", "noeviction")

    @cached("full", cache=cache)
    def blob(i: int) -> str:
        return "x" * 1000 + str(i)

    assert [blob(i)[-1] for i in range(3)] == ["0", "1", "2"]
    assert cache.stats["full"].errors >= 3
    assert cache.status()["backend"] == "redis"  # a refused write is not an outage


def test_wrong_password_falls_back_without_leaking_it(caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(password="right-secret").start()
    try:
        url = f"redis://:wrong-secret@127.0.0.1:{server.port}/0"
        c = Cache(FallbackBackend(RedisBackend(url, socket_timeout=TIMEOUT), MemoryBackend()))
        caplog.set_level(logging.DEBUG)

        @cached("auth", cache=c)
        def f() -> int:
            return 5

        assert f() == 5
        status = c.status()
        assert status["backend"] == "memory"
        text = str(status) + caplog.text
        assert "wrong-secret" not in text and "right-secret" not in text
        assert ":***@" in str(status["redis_url"])
        c.close()
    finally:
        server.stop()


def test_processes_share_one_computation_through_a_lease(redis_server: RedisServer, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time, redis
            from clusternb.cache import Cache, FallbackBackend, MemoryBackend, RedisBackend, cached
            cache = Cache(FallbackBackend(RedisBackend({redis_server.url!r}), MemoryBackend()))
            counter = redis.Redis.from_url({redis_server.url!r})

            @cached("lease", cache=cache)
            def expensive():
                counter.incr("computations")
                time.sleep(1.0)
                return {{"v": 1}}

            while time.time() < float(sys.argv[1]):  # start together
                time.sleep(0.001)
            print(expensive())
            """
        )
    )
    start_at = str(time.time() + 2.0)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen([sys.executable, str(script), start_at], stdout=subprocess.PIPE, env=env) for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60)[0].decode().strip() for p in procs]
    assert outputs == ["{'v': 1}"] * 4
    assert int(redis_server.client().get("computations")) == 1


async def _await_backend(cache: Cache, name: str, probe: object, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await probe()  # type: ignore[operator]
        if cache.status()["backend"] == name:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.asyncio
async def test_async_calls_answer_through_a_kill_and_a_pause_then_use_redis_again(
    cache: Cache, redis_server: RedisServer
) -> None:
    @cached("aloop", cache=cache)
    async def square(x: int) -> int:
        return x * x

    for i in range(60):
        if i == 20:
            redis_server.kill()
        assert await square(i % 10) == (i % 10) ** 2
    assert cache.status()["backend"] == "memory"
    redis_server.restart()
    assert await _await_backend(cache, "redis", lambda: square(3))
    await square(11)
    assert any(k.startswith(b"clusternb:cache:") for k in redis_server.client().keys("*"))

    redis_server.pause()
    try:
        for i in range(5):
            assert await square(i) == i * i
        assert cache.status()["backend"] == "memory"
        assert "TimeoutError" in (cache.status()["last_failure_reason"] or "")
    finally:
        redis_server.resume()
    assert await _await_backend(cache, "redis", lambda: square(4))
    await cache.aclose()


@pytest.mark.asyncio
async def test_a_cancelled_async_read_never_hands_its_reply_to_the_next_read(redis_server: RedisServer) -> None:
    backend = RedisBackend(redis_server.url, socket_timeout=5.0)
    await backend.aset("a", make_entry("value of a", 0.0), 60)
    await backend.aset("b", make_entry("value of b", 0.0), 60)
    redis_server.pause()
    try:
        read_a = asyncio.create_task(backend.aget("a"))
        await asyncio.sleep(0.3)  # the GET of "a" is sent; its reply will come only after the resume
        read_a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read_a
    finally:
        redis_server.resume()
    entry = await backend.aget("b")
    assert entry is not None and entry_from_bytes(entry.to_bytes(), decode=True).value == "value of b"
    await backend.aclose()
