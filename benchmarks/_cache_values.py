"""The values the product really caches, for ``bench_cache.py``: 98 worker records and ``workers()`` frames.

Each payload is measured beside the same peers in one run: cachetools (one shared object), aiocache's memory
cache and its Redis cache with the JSON and the pickle serializer (JSON only for the JSON value: it cannot
encode a frame), and the raw GET of the same bytes; clusternb with its default (a value each caller may
mutate), with ``share=True``, and, given a revision, that revision's cache (imported under another name).
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cachetools
import redis
import redis.asyncio
from aiocache import Cache as AioCache
from aiocache import cached as aio_cached
from aiocache.serializers import JsonSerializer, PickleSerializer

from benchmarks._util import Result, ainterleaved, interleaved, table
from tests.redis_server import RedisServer


def worker_records(n: int = 98) -> dict[str, Any]:
    """``n`` worker records as nested dicts (about 20 KB of JSON for 98): what a dashboard-like function caches."""
    return {
        "workers": [
            {
                "node": f"node-{i:03d}",
                "status": "online",
                "last_seen": 1_700_000_000.0 + i,
                "cpu": {"percent": 12.5 + i % 7, "count": 8, "load": [0.5, 0.4, 0.3]},
                "mem": {"used_bytes": 4 * 2**30, "total_bytes": 16 * 2**30},
                "gpus": [{"index": 0, "util_percent": 50.0}],
                "labels": {"rack": f"r{i % 4}"},
            }
            for i in range(n)
        ]
    }


def workers_frame(n: int) -> Any:
    """The ``workers()`` frame of ``n`` nodes, built by the product's own frame builder."""
    from clusternb import frames
    from tests.helpers import make_snapshot

    snaps = [make_snapshot(f"node-{i:05d}", time=1.7e9 - i % 7, labels={"rack": f"r{i % 40}"}) for i in range(n)]
    return frames.workers_frame(snaps, 1.7e9 + 1, lambda i: (2 * i, 3 * i))


def import_revision(rev: str, into: Path) -> Any:
    """``clusternb/cache`` of ``rev``, importable as ``cache_before`` beside this tree's ``clusternb.cache``."""
    archive = subprocess.run(["git", "archive", rev, "clusternb/cache"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    package = into / "cache_before"
    (into / "clusternb" / "cache").rename(package)
    for source in package.glob("*.py"):
        source.write_text(source.read_text().replace("clusternb.cache", "cache_before"))
    sys.path.insert(0, str(into))
    return importlib.import_module("cache_before")


ROOT = Path(__file__).resolve().parent.parent
#: Timed calls per case, by payload: big values take longer per call, and each case needs only a stable median.
REALISTIC_RUNS = {"memory": 4_000, "redis": 1_000, "redis_big": 200}


def realistic(server: RedisServer, before: Any, rev: str | None) -> None:
    """One table per payload: clusternb (default and shared), its revision ``rev``, and the peers."""
    payloads: list[tuple[str, Any]] = [("98 worker records (JSON)", worker_records())]
    payloads += [(f"workers() frame, {n:,} nodes", workers_frame(n)) for n in (100, 1_000, 10_000)]
    summary: list[tuple[str, dict[str, float]]] = []
    for label, value in payloads:
        results, sizes = realistic_payload(server, value, before, rev)
        print(table(f"{label}: {sizes}", results, baseline="cachetools @cached (shared)"))
        print()
        summary.append((label, {r.name: r.median_s for r in results}))
    print_targets(summary, rev)


@dataclass
class Subject:
    """One clusternb cache under test: this tree's, or the revision's (``suffix`` " @ REV")."""

    suffix: str
    cached: Callable[..., Any]
    memory: Any
    redis: Any


def subjects(server: RedisServer, before: Any, rev: str | None) -> list[Subject]:
    import clusternb.cache as now

    out = []
    for suffix, module in [("", now)] + ([(f" @ {rev}", before)] if before is not None else []):
        redis_cache = module.Cache(
            module.FallbackBackend(module.RedisBackend(server.url), module.MemoryBackend()), default_ttl=600
        )
        out.append(Subject(suffix, module.cached, module.Cache(module.MemoryBackend(), default_ttl=600), redis_cache))
    return out


def describe(value: Any) -> str:
    import pickle

    import pandas as pd

    from clusternb.cache.codec import make_entry

    size = f"clusternb entry {make_entry(value, time.time()).size:,} B"
    if isinstance(value, pd.DataFrame):
        memory = int(value.memory_usage(deep=True).sum())
        size += f", frame in memory {memory:,} B, pickle {len(pickle.dumps(value)):,} B"
    return size


def realistic_payload(server: RedisServer, value: Any, before: Any, rev: str | None) -> tuple[list[Result], str]:
    """The cases of one payload: memory (sync, then async), then Redis (sync, then async), each interleaved."""
    from clusternb.cache.codec import make_entry

    is_frame = not isinstance(value, dict)
    stored = make_entry(value, time.time()).to_bytes()

    def produce(x: int) -> Any:
        return value.copy() if is_frame else worker_records()

    async def aproduce(x: int) -> Any:
        return produce(x)

    subs = subjects(server, before, rev)
    now = subs[0]
    tc = cachetools.cached(cachetools.TTLCache(maxsize=64, ttl=600))(produce)
    cases = {"cachetools @cached (shared)": _bind(tc)}
    cases |= {f"clusternb memory, sync{s.suffix}": _bind(s.cached("r", cache=s.memory)(produce)) for s in subs}
    cases["clusternb memory, sync, share=True"] = _bind(now.cached("rs", cache=now.memory, share=True)(produce))
    if not is_frame:  # a lazily copied value costs more to read: a hit plus reading every field, each way
        cases["cachetools + read all"] = _walked(tc)
        cases |= {
            f"clusternb memory, sync + read all{s.suffix}": _walked(s.cached("r", cache=s.memory)(produce))
            for s in subs
        }
    results = interleaved(cases, REALISTIC_RUNS["memory"], rounds=20)

    redis_runs = REALISTIC_RUNS["redis_big" if len(stored) > 200_000 else "redis"]
    raw = redis.Redis.from_url(server.url)
    raw.set("raw-key", stored)
    rcases: dict[str, Callable[[], object]] = {"redis-py GET of the entry (floor)": lambda: raw.get("raw-key")}
    rcases |= {f"clusternb redis, sync{s.suffix}": _bind(s.cached("r", cache=s.redis)(produce)) for s in subs}
    results += interleaved(rcases, redis_runs, rounds=20)

    async def run_async() -> list[Result]:
        acases = {f"clusternb memory, async{s.suffix}": _abind(s.cached("ar", cache=s.memory)(aproduce)) for s in subs}
        acases["clusternb memory, async, share=True"] = _abind(
            now.cached("ars", cache=now.memory, share=True)(aproduce)
        )
        acases["aiocache memory (shared)"] = _abind(aio_cached(ttl=600, cache=AioCache.MEMORY)(aproduce))
        out = await ainterleaved(acases, REALISTIC_RUNS["memory"], rounds=20)
        araw = redis.asyncio.Redis.from_url(server.url)
        racases: dict[str, Callable[[], Awaitable[object]]] = {
            "redis.asyncio GET of the entry (floor)": lambda: araw.get("raw-key")
        }
        racases |= {f"clusternb redis, async{s.suffix}": _abind(s.cached("ar", cache=s.redis)(aproduce)) for s in subs}
        # aiocache's JSON serializer cannot encode a frame: pickle only there.
        for name, serializer in [("JSON", JsonSerializer()), ("pickle", PickleSerializer())][is_frame:]:
            aio = aio_cached(
                ttl=600,
                cache=AioCache.REDIS,
                endpoint="127.0.0.1",
                port=server.port,
                serializer=serializer,
                namespace=f"aio-{name}",
            )(aproduce)
            racases[f"aiocache redis, {name}"] = _abind(aio)
        out += await ainterleaved(racases, redis_runs, rounds=20)
        await araw.aclose()
        for s in subs:
            await s.redis.aclose()
        return out

    results += asyncio.run(run_async())
    raw.delete("raw-key")
    raw.close()
    for s in subs:
        s.redis.clear()
        s.redis.close()
    return results, describe(value)


def _walk(value: Any) -> None:
    """Read every field through the Python API, as a caller's code would."""
    if isinstance(value, dict):
        for key in value:
            _walk(value[key])
    elif isinstance(value, list):
        for item in value:
            _walk(item)


def _walked(fn: Callable[[int], object]) -> Callable[[], object]:
    return lambda: _walk(fn(1))


def _bind(fn: Callable[[int], object]) -> Callable[[], object]:
    return lambda: fn(1)


def _abind(fn: Callable[[int], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    return lambda: fn(1)


def _ratio(medians: dict[str, float], a: str, b: str) -> str:
    return f"{medians[a] / medians[b]:.2f}" if a in medians and b in medians else "-"


def print_targets(summary: list[tuple[str, dict[str, float]]], rev: str | None) -> None:
    """The issue's targets per payload, and the ratios they rest on."""
    print("### Ratios of medians (realistic values)\n")
    head = "| payload | aiocache mem / clusternb mem async | clusternb share=True / cachetools |"
    head += " clusternb redis sync / GET | aiocache redis JSON / clusternb redis async |"
    head += " aiocache redis pickle / clusternb redis async |"
    if rev:
        head += f" clusternb mem sync @ {rev} / now | clusternb redis sync @ {rev} / now |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for label, m in summary:
        row = f"| {label} | {_ratio(m, 'aiocache memory (shared)', 'clusternb memory, async')}"
        row += f" | {_ratio(m, 'clusternb memory, sync, share=True', 'cachetools @cached (shared)')}"
        row += f" | {_ratio(m, 'clusternb redis, sync', 'redis-py GET of the entry (floor)')}"
        row += f" | {_ratio(m, 'aiocache redis, JSON', 'clusternb redis, async')}"
        row += f" | {_ratio(m, 'aiocache redis, pickle', 'clusternb redis, async')} |"
        if rev:
            row += f" {_ratio(m, f'clusternb memory, sync @ {rev}', 'clusternb memory, sync')}"
            row += f" | {_ratio(m, f'clusternb redis, sync @ {rev}', 'clusternb redis, sync')} |"
        print(row)
    print()
    for label, m in summary:
        fast = m["clusternb memory, async"] < m["aiocache memory (shared)"]
        mine = "memory hit (async, a value the caller may mutate) faster than aiocache's"
        print(f"{'PASS' if fast else 'MISS'}  {label}: {mine}")
        shared = m["clusternb memory, sync, share=True"] <= 2 * m["cachetools @cached (shared)"]
        print(f"{'PASS' if shared else 'MISS'}  {label}: memory hit with share=True within 2x of cachetools")
