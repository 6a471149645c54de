"""Hit latency of clusternb's @cached beside its floors (dict lookup, raw redis-py GET) and its peers.

    python benchmarks/bench_cache.py

Every case caches the same function (``lookup(42) -> {"id": 42, "name": "node-42", "load": [0.5, ...]}``,
a small JSON-able result) and is measured in the same run on the same machine: warm-up, then per-call wall
time with perf_counter_ns; median and p99. A local redis-server is started on a free port. Targets from
the cache issue are checked and printed as PASS/MISS lines.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cachetools
import redis
import redis.asyncio
from aiocache import Cache as AioCache
from aiocache import cached as aio_cached
from aiocache.serializers import JsonSerializer

from benchmarks._util import Result, ainterleaved, interleaved, table
from clusternb.cache import Cache, FallbackBackend, MemoryBackend, RedisBackend, cached
from tests.redis_server import RedisServer

RUNS = 20_000
REDIS_RUNS = 5_000


def compute(x: int) -> dict[str, Any]:
    return {"id": x, "name": f"node-{x}", "load": [0.5, 0.4, 0.3]}


async def acompute(x: int) -> dict[str, Any]:
    return compute(x)


def main() -> None:
    server = RedisServer().start()
    try:
        results = run(server)
    finally:
        server.stop()
    by_name = {r.name: r for r in results}
    print(table("Cache hit latency (same function, same run)", results, baseline="dict.get (floor)"))
    print()
    checks = [
        ("memory hit <= 2 µs median (sync)", by_name["clusternb @cached, memory, sync"].median_s <= 2e-6),
        (
            "memory hit >= 5x faster than aiocache memory",
            by_name["aiocache @cached, memory"].median_s / by_name["clusternb @cached, memory, async"].median_s >= 5,
        ),
        (
            "redis hit within 1.3x of raw redis-py GET (sync)",
            by_name["clusternb @cached, redis, sync"].median_s / by_name["redis-py GET (floor)"].median_s <= 1.3,
        ),
        (
            "redis hit (async, like for like) >= 1.5x faster than aiocache redis",
            by_name["aiocache @cached, redis"].median_s / by_name["clusternb @cached, redis, async"].median_s >= 1.5,
        ),
    ]
    ratios = [
        ("clusternb memory sync / dict.get", "clusternb @cached, memory, sync", "dict.get (floor)"),
        ("aiocache memory / clusternb memory async", "aiocache @cached, memory", "clusternb @cached, memory, async"),
        ("cachetools / clusternb memory sync", "cachetools @cached (TTLCache)", "clusternb @cached, memory, sync"),
        ("clusternb redis sync / redis-py GET", "clusternb @cached, redis, sync", "redis-py GET (floor)"),
        ("clusternb redis async / redis.asyncio GET", "clusternb @cached, redis, async", "redis.asyncio GET (floor)"),
        ("aiocache redis / clusternb redis sync", "aiocache @cached, redis", "clusternb @cached, redis, sync"),
        ("aiocache redis / clusternb redis async", "aiocache @cached, redis", "clusternb @cached, redis, async"),
    ]
    print("### Ratios of medians\n")
    print("| ratio | value |\n|---|---:|")
    for label, a, b in ratios:
        print(f"| {label} | {by_name[a].median_s / by_name[b].median_s:.2f} |")
    print()
    for label, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label}")
    floor = by_name["aiocache @cached, redis"].median_s / by_name["redis.asyncio GET (floor)"].median_s
    print(
        f"info  aiocache's redis hit is {floor:.2f}x redis.asyncio's own GET, the floor both sit on: a 1.5x lead "
        "over aiocache needs a hit faster than that floor"
    )


def run(server: RedisServer) -> list[Result]:
    d = {42: compute(42)}
    tc = cachetools.cached(cachetools.TTLCache(maxsize=2048, ttl=60))(compute)
    mem = Cache(MemoryBackend(), default_ttl=60)
    f_mem = cached("bench", cache=mem)(compute)
    memory_cases: dict[str, Callable[[], object]] = {
        "dict.get (floor)": lambda: d.get(42),
        "cachetools @cached (TTLCache)": lambda: tc(42),
        "clusternb @cached, memory, sync": lambda: f_mem(42),
    }
    results = interleaved(memory_cases, RUNS)

    raw = redis.Redis.from_url(server.url)
    raw.set("raw-key", b'{"id":42,"name":"node-42","load":[0.5,0.4,0.3]}')
    rcache = Cache(FallbackBackend(RedisBackend(server.url), MemoryBackend()), default_ttl=60)
    f_redis = cached("bench", cache=rcache)(compute)
    results += interleaved(
        {"redis-py GET (floor)": lambda: raw.get("raw-key"), "clusternb @cached, redis, sync": lambda: f_redis(42)},
        REDIS_RUNS,
    )

    async def run_async() -> list[Result]:
        a_mem = cached("abench", cache=mem)(acompute)
        aio_mem = aio_cached(ttl=60, cache=AioCache.MEMORY)(acompute)
        out = await ainterleaved(
            {"clusternb @cached, memory, async": lambda: a_mem(42), "aiocache @cached, memory": lambda: aio_mem(42)},
            RUNS,
        )
        araw = redis.asyncio.Redis.from_url(server.url)
        a_redis = cached("abench", cache=rcache)(acompute)
        aio_redis = aio_cached(
            ttl=60,
            cache=AioCache.REDIS,
            endpoint="127.0.0.1",
            port=server.port,
            serializer=JsonSerializer(),
            namespace="aiocache-bench",
        )(acompute)
        out += await ainterleaved(
            {
                "redis.asyncio GET (floor)": lambda: araw.get("raw-key"),
                "clusternb @cached, redis, async": lambda: a_redis(42),
                "aiocache @cached, redis": lambda: aio_redis(42),
            },
            REDIS_RUNS,
        )
        await araw.aclose()
        await rcache.aclose()
        return out

    results += asyncio.run(run_async())
    raw.close()
    rcache.close()
    notes = {
        "cachetools @cached (TTLCache)": "no copy: every caller shares one object",
        "clusternb @cached, memory, sync": "a fresh copy per caller",
        "redis.asyncio GET (floor)": "pooled client, as aiocache uses it",
        "clusternb @cached, redis, async": "one connection per event loop",
    }
    for r in results:
        r.note = notes.get(r.name, "")
    return results


if __name__ == "__main__":
    main()
