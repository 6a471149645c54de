"""Hit latency of clusternb's @cached beside its floors (dict lookup, raw redis-py GET) and its peers.

    python benchmarks/bench_cache.py [--redis-cluster] [--before REV] [--realistic-only]

Every case caches the same function (``lookup(42) -> {"id": 42, "name": "node-42", "load": [0.5, ...]}``,
a small JSON-able result) and is measured in the same run on the same machine: warm-up, then per-call wall
time with perf_counter_ns; median and p99. A local redis-server is started on a free port. Targets from
the cache issue are checked and printed as PASS/MISS lines.

Then the values the product really caches (not with ``--redis-cluster``): 98 worker records as nested dicts
(about 20 KB of JSON) and ``workers()`` frames of 100, 1,000 and 10,000 nodes, each payload's size printed.
Each is measured beside the same peers: cachetools (one shared object), aiocache's memory cache and its
Redis cache with the JSON and the pickle serializer (JSON only for the JSON value: it cannot encode a frame),
and the raw GET of the same bytes. clusternb is measured twice: with its default (a value each caller may
mutate) and with ``share=True`` (one shared object, which callers must not mutate).

``--before REV`` also measures the cache of that git revision in the same run, interleaved with the rest:
its ``clusternb/cache`` package is exported with ``git archive`` and imported under another name (the rest
of clusternb is this tree's, so REV must be a revision whose cache fits it, such as the one before a cache
change).

With ``--redis-cluster`` the Redis cases run against a real local Redis Cluster instead (six redis-server
processes, three masters and three replicas, from ``tests/redis_cluster.py``): clusternb is given the first
node's URL and detects the cluster itself; the floors are redis-py's cluster clients (``RedisCluster``, sync
and asyncio) on the same URL. aiocache's Redis backend is left out there: it talks to one node only, so a key
whose slot another master serves answers MOVED.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cachetools
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from aiocache import Cache as AioCache
from aiocache import cached as aio_cached
from aiocache.serializers import JsonSerializer

from benchmarks._cache_values import import_revision, realistic
from benchmarks._util import Result, ainterleaved, interleaved, table
from clusternb.cache import Cache, FallbackBackend, MemoryBackend, RedisBackend, cached
from tests.redis_cluster import LocalRedisCluster
from tests.redis_server import RedisServer

RUNS = 20_000
REDIS_RUNS = 5_000


def compute(x: int) -> dict[str, Any]:
    return {"id": x, "name": f"node-{x}", "load": [0.5, 0.4, 0.3]}


async def acompute(x: int) -> dict[str, Any]:
    return compute(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="run the Redis cases against a local Redis Cluster (3 masters, 3 replicas) instead of one redis-server",
    )
    parser.add_argument("--before", metavar="REV", help="also measure the cache of this git revision (e.g. HEAD~1)")
    parser.add_argument("--realistic-only", action="store_true", help="skip the small value's table and checks")
    args = parser.parse_args()
    cluster = args.redis_cluster
    with tempfile.TemporaryDirectory() as tmp:
        before = import_revision(args.before, Path(tmp)) if args.before else None
        server = LocalRedisCluster().start() if cluster else RedisServer().start()
        try:
            if not args.realistic_only:
                report_small(run(server, cluster=cluster), cluster)
            if not cluster:
                assert isinstance(server, RedisServer)
                realistic(server, before, args.before)
        finally:
            server.stop()


def report_small(results: list[Result], cluster: bool) -> None:
    """The table, ratios and checks of the small value."""
    by_name = {r.name: r for r in results}
    title = "Cache hit latency (same function, same run)"
    if cluster:
        title = "Cache hit latency on a Redis Cluster (3 masters, 3 replicas; same function, same run)"
    print(table(title, results, baseline="dict.get (floor)"))
    print()

    def median(name: str) -> float:
        return by_name[name].median_s

    # (label, the cases it needs, the test): a line whose cases were not measured (aiocache's Redis backend on a
    # cluster) is left out.
    checks: list[tuple[str, tuple[str, ...], Callable[[], bool]]] = [
        (
            "memory hit <= 2 µs median (sync)",
            ("clusternb @cached, memory, sync",),
            lambda: median("clusternb @cached, memory, sync") <= 2e-6,
        ),
        (
            "memory hit >= 5x faster than aiocache memory",
            ("aiocache @cached, memory", "clusternb @cached, memory, async"),
            lambda: median("aiocache @cached, memory") / median("clusternb @cached, memory, async") >= 5,
        ),
        (
            "redis hit within 1.3x of raw redis-py GET (sync)",
            ("clusternb @cached, redis, sync", "redis-py GET (floor)"),
            lambda: median("clusternb @cached, redis, sync") / median("redis-py GET (floor)") <= 1.3,
        ),
        (
            "redis hit (async, like for like) >= 1.5x faster than aiocache redis",
            ("aiocache @cached, redis", "clusternb @cached, redis, async"),
            lambda: median("aiocache @cached, redis") / median("clusternb @cached, redis, async") >= 1.5,
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
        if a in by_name and b in by_name:
            print(f"| {label} | {median(a) / median(b):.2f} |")
    print()
    for label, needs, ok in checks:
        if all(name in by_name for name in needs):
            print(f"{'PASS' if ok() else 'MISS'}  {label}")
    if "aiocache @cached, redis" in by_name:
        floor = median("aiocache @cached, redis") / median("redis.asyncio GET (floor)")
        print(
            f"info  aiocache's redis hit is {floor:.2f}x redis.asyncio's own GET, the floor both sit on: a 1.5x lead "
            "over aiocache needs a hit faster than that floor"
        )
    else:
        print("info  aiocache @cached, redis: not measured on a cluster (it talks to one node; other slots: MOVED)")


def run(server: RedisServer | LocalRedisCluster, cluster: bool = False) -> list[Result]:
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

    raw: redis.Redis | redis.cluster.RedisCluster
    raw = redis.cluster.RedisCluster.from_url(server.url) if cluster else redis.Redis.from_url(server.url)
    raw.set("raw-key", b'{"id":42,"name":"node-42","load":[0.5,0.4,0.3]}')
    primary = RedisBackend(server.url)
    rcache = Cache(FallbackBackend(primary, MemoryBackend()), default_ttl=60)
    f_redis = cached("bench", cache=rcache)(compute)
    if cluster:
        check_cluster_detected(primary, f_redis)
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
        araw: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
        if cluster:
            araw = redis.asyncio.cluster.RedisCluster.from_url(server.url)
        else:
            araw = redis.asyncio.Redis.from_url(server.url)
        a_redis = cached("abench", cache=rcache)(acompute)
        redis_cases: dict[str, Callable[[], Awaitable[object]]] = {
            "redis.asyncio GET (floor)": lambda: araw.get("raw-key"),
            "clusternb @cached, redis, async": lambda: a_redis(42),
        }
        if not cluster:  # aiocache's Redis backend cannot follow a cluster's slots (see the module docstring)
            assert isinstance(server, RedisServer)
            aio_redis = aio_cached(
                ttl=60,
                cache=AioCache.REDIS,
                endpoint="127.0.0.1",
                port=server.port,
                serializer=JsonSerializer(),
                namespace="aiocache-bench",
            )(acompute)
            redis_cases["aiocache @cached, redis"] = lambda: aio_redis(42)
        out += await ainterleaved(redis_cases, REDIS_RUNS)
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
    if cluster:
        notes |= {
            "redis-py GET (floor)": "redis.cluster.RedisCluster",
            "redis.asyncio GET (floor)": "redis.asyncio.cluster.RedisCluster",
            "clusternb @cached, redis, async": "redis.asyncio cluster client, one per event loop",
        }
    for r in results:
        r.note = notes.get(r.name, "")
    return results


def check_cluster_detected(backend: RedisBackend, f: Callable[[int], object]) -> None:
    """Stop unless clusternb's link found the cluster and the entry is in Redis (no silent memory fallback)."""
    f(42)  # the miss that writes the entry: the link's first call, which detects the mode
    link = getattr(backend, "link", None)
    if link is None or link.cluster is not True:
        raise SystemExit("clusternb did not detect the Redis Cluster (this version has no RedisLink cluster mode)")
    if not link.call(lambda c: c.keys("*:bench:*", target_nodes=c.PRIMARIES)):  # on every master, not one node
        raise SystemExit("no cache entry reached the cluster: the Redis cases would measure the memory fallback")


if __name__ == "__main__":
    main()
