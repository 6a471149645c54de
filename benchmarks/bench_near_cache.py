"""The near cache (Redis CLIENT TRACKING): a Redis-mode hit beside the memory hit, the plain Redis hit and peers,
and how fast a change made by one process reaches another process's near copy.

    python benchmarks/bench_near_cache.py [--changes N]

One local redis-server on a free port; every case in the same run, interleaved (median and p99 per call).
Values: a small JSON result (about 50 bytes), 98 worker records (about 20 KB of JSON) and ``workers()`` frames of
100, 1,000 and 10,000 nodes, each payload's size printed. Cases for each value:

- clusternb ``@cached`` on memory (the target's baseline), on Redis without a near cache (the hit before this
  change), and on Redis with its near cache (the hit after);
- the floor: a raw redis-py GET of the same bytes (redis-py's own client-side cache, ``protocol=3,
  cache_config=CacheConfig()``, would be the other floor, but it refuses any Redis before 7.4 and Debian 12
  ships 7.0: its connection raises "client-side caching is supported by Redis 7.4 or later");
- the peers, async: cashews with ``client_side=True`` (its default pickle serializer, values shared between
  callers) and aiocache's memory cache.

Then the propagation: a reader in another process polls its near copy of one key while this process writes a new
version of it ``--changes`` times; the time from the writer's SET returning (the change is in Redis) to the
reader's first sight of the new version (both on the system-wide monotonic clock), median and p99. The reader
busy-polls in Python, holding the GIL: the worst case for its tracker thread, which must win the GIL to
read an invalidation (readers poll the tracking socket themselves to close that gap; see
``clusternb/cache/near.py``).

Targets (issue 17, item 1): a small entry's Redis-mode hit within 3x of the memory hit; the 10,000-node hit under
1 ms; a change seen by every other process within 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from aiocache import Cache as AioCache
from aiocache import cached as aio_cached

from benchmarks._cache_values import describe, worker_records, workers_frame
from benchmarks._util import Result, ainterleaved, fmt_time, interleaved, table
from clusternb.cache import Cache, FallbackBackend, MemoryBackend, NearCache, RedisBackend, cached
from clusternb.cache.codec import make_entry
from clusternb.cache.core import key_prefix
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
RUNS = {"small": 20_000, "json": 10_000, 100: 10_000, 1_000: 4_000, 10_000: 400}
PLAIN_RUNS = {"small": 4_000, "json": 2_000, 100: 2_000, 1_000: 500, 10_000: 100}


def small() -> dict[str, Any]:
    return {"id": 42, "name": "node-42", "load": [0.5, 0.4, 0.3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=300, help="changes timed for the propagation (default 300)")
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        payloads: list[tuple[Any, str, Any]] = [
            ("small", "small JSON result", small()),
            ("json", "98 worker records (JSON)", worker_records()),
        ]
        payloads += [(n, f"workers() frame, {n:,} nodes", workers_frame(n)) for n in (100, 1_000, 10_000)]
        medians: dict[Any, dict[str, float]] = {}
        for size, label, value in payloads:
            results = hits(server, size, value)
            print(table(f"{label}: {describe(value)}", results, baseline="clusternb, memory"))
            print()
            medians[size] = {r.name: r.median_s for r in results}
        delays = propagation(server, args.changes)
        print("### A change written by one process, seen by another process's near cache")
        print()
        print("| changes | median | p99 | max |")
        print("|---:|---:|---:|---:|")
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        print(f"| {len(delays)} | {fmt_time(statistics.median(delays))} | {fmt_time(p99)} | {fmt_time(delays[-1])} |")
        print()
        targets(medians, p99)
    finally:
        server.stop()


def hits(server: RedisServer, size: Any, value: Any) -> list[Result]:
    """Every case of one payload, sync ones interleaved, then async ones."""
    is_frame = not isinstance(value, dict)

    def produce(x: int) -> Any:
        return value.copy() if is_frame else dict(value)

    async def aproduce(x: int) -> Any:
        return produce(x)

    memory = Cache(MemoryBackend(), default_ttl=600)
    plain = Cache(FallbackBackend(RedisBackend(server.url), MemoryBackend()), default_ttl=600)
    near_backend = RedisBackend(server.url)
    near_backend.near = NearCache(near_backend.link, key_prefix(), 256 << 20)
    near = Cache(FallbackBackend(near_backend, MemoryBackend()), default_ttl=600)
    stored = make_entry(value, time.time()).to_bytes()
    raw = redis.Redis.from_url(server.url)
    raw.set("raw-key", stored)
    f_memory = cached(f"m{size}", cache=memory)(produce)
    f_plain = cached(f"p{size}", cache=plain)(produce)
    f_near = cached(f"n{size}", cache=near)(produce)
    f_near(1)
    deadline = time.monotonic() + 10
    while near_backend.near.state != "on" or near_backend.near.usage()[0] == 0:  # tracker up, copy kept
        assert time.monotonic() < deadline, f"near cache did not start: {near_backend.near.state}"
        f_near(1)
        time.sleep(0.01)
    runs, plain_runs = RUNS[size], PLAIN_RUNS[size]
    results = interleaved(
        {
            "clusternb, memory": lambda: f_memory(1),
            "clusternb, redis + near cache": lambda: f_near(1),
        },
        runs,
    )
    results += interleaved(
        {"redis-py GET (floor)": lambda: raw.get("raw-key"), "clusternb, redis, no near cache": lambda: f_plain(1)},
        plain_runs,
    )
    results += asyncio.run(async_peers(server, size, aproduce, runs))
    notes = {
        "clusternb, memory": "each caller's own copy",
        "clusternb, redis + near cache": "each caller's own copy; after this change",
        "clusternb, redis, no near cache": "before this change",
        "cashews client_side=True": "async; pickle; one object shared by callers",
        "aiocache @cached, memory": "async; one object shared by callers",
    }
    for r in results:
        r.note = notes.get(r.name, "")
    for c in (memory, plain, near):
        c.close()
    raw.close()
    return results


async def async_peers(
    server: RedisServer, size: Any, aproduce: Callable[[int], Awaitable[Any]], runs: int
) -> list[Result]:
    from cashews import Cache as Cashews

    cashews = Cashews()
    cashews.setup(f"redis://127.0.0.1:{server.port}/0", client_side=True, prefix=f"cashews-{size}")
    await cashews.init()

    @cashews(ttl="10m", key=f"cashews-{size}:{{x}}")
    async def f_cashews(x: int) -> Any:
        return await aproduce(x)

    f_aio = aio_cached(ttl=600, cache=AioCache.MEMORY, namespace=f"aio-{size}")(aproduce)
    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "cashews client_side=True": lambda: f_cashews(1),
        "aiocache @cached, memory": lambda: f_aio(1),
    }
    out = await ainterleaved(cases, runs)
    await cashews.close()
    return out


READER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from clusternb.cache import NearCache, RedisBackend
    from clusternb.cache.core import key_prefix

    backend = RedisBackend(sys.argv[1])
    backend.near = NearCache(backend.link, key_prefix(), 1 << 20)
    key, last, changes = sys.argv[2], 0, int(sys.argv[4])
    print("ready", flush=True)
    while last < changes:
        entry = backend.get(key)
        version = entry.value_for_caller(share=True) if entry is not None else 0
        if version != last:
            print(version, time.monotonic_ns(), flush=True)
            last = version
    """
)


def propagation(server: RedisServer, changes: int) -> list[float]:
    """Seconds from each SET's return to the other process's first sight of the new version, sorted (0 where
    the reader saw it before the writer had Redis' answer)."""
    writer = RedisBackend(server.url)
    key = key_prefix() + "bench:propagation"
    writer.set(key, make_entry(0, time.time()), 600)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, server.url, key, str(ROOT), str(changes)], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    time.sleep(2.0)  # its tracker connects and its near copy of version 0 is kept
    written: dict[int, int] = {}
    for version in range(1, changes + 1):
        entry = make_entry(version, time.time())
        writer.set(key, entry, 600)
        written[version] = time.monotonic_ns()  # the change is in Redis: every other process may now see it
        time.sleep(0.02)  # one change at a time: the reader is seen catching each one
    seen = {}
    for line in reader.stdout:
        version, when = (int(part) for part in line.split())
        seen[version] = when
    reader.wait(timeout=30)
    writer.close()
    return sorted(max(seen[v] - written[v], 0) / 1e9 for v in written if v in seen)


def targets(medians: dict[Any, dict[str, float]], p99_change: float) -> None:
    near_small = medians["small"]["clusternb, redis + near cache"]
    memory_small = medians["small"]["clusternb, memory"]
    near_big = medians[10_000]["clusternb, redis + near cache"]
    lines = [
        (near_small <= 3 * memory_small, f"small entry: Redis-mode hit {fmt_time(near_small)} = "
         f"{near_small / memory_small:.2f}x the memory hit ({fmt_time(memory_small)}); target within 3x"),
        (near_big < 1e-3, f"10,000-node frame: Redis-mode hit {fmt_time(near_big)}; target under 1 ms"),
        (p99_change < 10e-3, f"a change seen by another process: p99 {fmt_time(p99_change)}; target within 10 ms"),
    ]  # fmt: skip
    for ok, text in lines:
        print(("PASS " if ok else "MISS ") + text)


if __name__ == "__main__":
    main()
