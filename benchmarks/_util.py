"""Timing and table helpers shared by the benchmark scripts (median and p99 of many runs, ratios)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class Result:
    name: str
    median_s: float
    p99_s: float
    runs: int
    note: str = ""


def measure(name: str, fn: Callable[[], object], runs: int = 1000, warmup: int = 50, note: str = "") -> Result:
    """Time ``fn`` ``runs`` times after ``warmup`` calls; per-call wall time with perf_counter_ns."""
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        start = clock()
        fn()
        samples.append(clock() - start)
    result = summarize(name, samples)
    result.note = note
    return result


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(title: str, results: list[Result], baseline: str | None = None) -> str:
    """A Markdown table; with ``baseline``, a column of median ratios against that row."""
    base = next((r for r in results if r.name == baseline), None)
    head = "| case | median | p99 | runs |" + (f" × {baseline} |" if base else "") + " note |"
    sep = "|---|---:|---:|---:|" + ("---:|" if base else "") + "---|"
    lines = [f"### {title}", "", head, sep]
    for r in results:
        ratio = f" {r.median_s / base.median_s:.2f} |" if base else ""
        lines.append(f"| {r.name} | {fmt_time(r.median_s)} | {fmt_time(r.p99_s)} | {r.runs} |{ratio} {r.note} |")
    return "\n".join(lines)


def interleaved(cases: dict[str, Callable[[], object]], runs: int, rounds: int = 50) -> list[Result]:
    """Measure several cases in alternating rounds, so machine noise hits every case alike."""
    samples: dict[str, list[int]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for fn in cases.values():
        for _ in range(200):
            fn()
    per_round = max(runs // rounds, 1)
    for _ in range(rounds):
        for name, fn in cases.items():
            bucket = samples[name]
            for _ in range(per_round):
                start = clock()
                fn()
                bucket.append(clock() - start)
    return [summarize(name, s) for name, s in samples.items()]


async def ainterleaved(cases: dict[str, Callable[[], Awaitable[object]]], runs: int, rounds: int = 50) -> list[Result]:
    """The asyncio twin of :func:`interleaved` (each call awaited in the running loop)."""
    samples: dict[str, list[int]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for fn in cases.values():
        for _ in range(200):
            await fn()
    per_round = max(runs // rounds, 1)
    for _ in range(rounds):
        for name, fn in cases.items():
            bucket = samples[name]
            for _ in range(per_round):
                start = clock()
                await fn()
                bucket.append(clock() - start)
    return [summarize(name, s) for name, s in samples.items()]


def summarize(name: str, samples: list[int]) -> Result:
    """Median and p99 of per-call times in nanoseconds (with few samples, p99 is the slowest)."""
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Result(name, statistics.median(samples) / 1e9, p99 / 1e9, len(samples))
