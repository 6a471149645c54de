"""What a week of history costs in Redis, per node, and how fast ``metrics("7d")`` answers for 100 nodes.

    python benchmarks/bench_history.py [--nodes 100] [--days 7]

1. Bytes per node per day, from Redis's own ``MEMORY USAGE`` of the keys the stores write:
   - raw samples, one every 2 s, from this host's real sampler with its values varied per sample, for
     ``--raw-nodes`` nodes: as JSON records (what the previous version stored, in the key it used) and as
     compact records (what ``put`` stores now: :mod:`clusternb.state.raw_codec`); for comparison, msgpack
     arrays of the same fields. Beside them, ``history()`` of that hour of every node, in each form;
   - the 1-minute and the 1-hour rollups (``roll:1m:<node>``, ``roll:1h:<node>``) after ``--days`` of them.
2. ``metrics("7d")`` for ``--nodes`` nodes through a :class:`~clusternb.queries.Client` on that Redis with its
   query cache off (every call computes: the store read, the validation of every record, the frame), median
   of several runs; beside it ``metrics("1d")`` (minute rows) and the week in minute rows, which
   ``metrics("7d")`` does not choose for 100 nodes (over ``MAX_ROWS``), read and framed directly.

The rollups are filled through the store's API (``_keep_blocks``, what a writer's roller calls) with synthetic
minutes: each of ten series is simulated at 2 s (CPU with a daily cycle and noise, load averages following
it, memory and disk random walks, bursty disk and network rates, a GPU on series 7, 8 and 9) and folded
into min / mean / max per minute; node ``i`` carries series ``i % 10``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._util import fmt_time  # noqa: E402
from clusternb import frames  # noqa: E402
from clusternb.config import load_config  # noqa: E402
from clusternb.queries import Client  # noqa: E402
from clusternb.sources.local import LocalSampler  # noqa: E402
from clusternb.state import raw_codec, rollup, rollup_codec  # noqa: E402
from clusternb.state.redis import RedisStateStore  # noqa: E402
from clusternb.state.rollup import FIELDS, HOUR, MINUTE, Block, combine  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

DAY = 86_400
SAMPLES_PER_MINUTE = 30  # a 2 s interval
SERIES = 10
GIB = 2**30


def simulated_day(rng: np.random.Generator, day: int, gpu: bool) -> np.ndarray:
    """One day of minute statistics of one node: (1440 minutes, fields, (min, mean, max))."""
    n = 1440 * SAMPLES_PER_MINUTE
    t = (day * DAY + np.arange(n) * 2.0) / DAY
    cycle = 35 + 25 * np.sin(2 * np.pi * t)
    cpu = np.clip(cycle + np.cumsum(rng.normal(0, 0.4, n)) % 30 + rng.normal(0, 12, n), 0, 100)
    cores = 32
    load_1 = np.abs(_ema(cpu * cores / 100, 30) + rng.normal(0, 0.05, n))
    load_5, load_15 = _ema(load_1, 150), _ema(load_1, 450)
    total = 256 * GIB
    mem = np.clip(0.4 * total + np.cumsum(rng.normal(0, 2e6, n)), 0, total)
    swap = np.full(n, 512 * 2**20, "float64")
    disk_total = 2 * 2**40
    disk = 0.6 * disk_total + np.cumsum(rng.integers(0, 40_000, n)).astype("float64")
    burst = rng.random(n) < 0.4
    rates = [rng.exponential(scale, n) * burst for scale in (2e6, 8e6, 5e7, 2e7)]
    gpu_cols = [np.full(n, np.nan)] * 3
    if gpu:
        util = np.clip(50 + np.cumsum(rng.normal(0, 1, n)) % 50 + rng.normal(0, 5, n), 0, 100)
        gpu_cols = [util, 8 * 40 * GIB * util / 100, 40 + util * 0.4 + rng.normal(0, 0.5, n)]
    columns = [
        cpu, load_1, load_5, load_15, mem, total - mem, 100 * mem / total, swap, 100 * swap / (8 * GIB),
        disk, 100 * disk / disk_total, *rates, *gpu_cols,
    ]  # fmt: skip
    assert len(columns) == len(FIELDS)
    per_minute = np.stack(columns, axis=1).reshape(1440, SAMPLES_PER_MINUTE, len(FIELDS))
    if not gpu:
        return np.stack([per_minute.min(1), per_minute.mean(1), per_minute.max(1)], axis=2)
    with np.errstate(all="ignore"):
        return np.stack([np.nanmin(per_minute, 1), np.nanmean(per_minute, 1), np.nanmax(per_minute, 1)], axis=2)


def _ema(x: np.ndarray, span: int) -> np.ndarray:
    """An exponential moving average (what a load average is), vectorised well enough for a benchmark."""
    alpha = 2 / (span + 1)
    out = np.empty_like(x)
    acc = x[0]
    for i in range(0, len(x), 30):  # per 30 samples: the shape matters here, not the last digit
        acc = acc + alpha * 30 * (x[i : i + 30].mean() - acc) if alpha * 30 < 1 else x[i : i + 30].mean()
        out[i : i + 30] = acc
    return out


def blocks_of(node: str, start_day: float, minutes: np.ndarray) -> tuple[list[Block], Block]:
    """A day of minute stats as its 24 minute blocks and its hour block, folded as a writer's roller folds."""
    hours = Block.empty(node, HOUR, start_day)
    out = []
    for h in range(24):
        part = minutes[h * 60 : (h + 1) * 60]  # (60, fields, 3)
        values = array("d", np.ascontiguousarray(part.transpose(1, 2, 0)).ravel().tolist())
        block = Block(node, MINUTE, start_day + h * 3600, list(range(60)), [SAMPLES_PER_MINUTE] * 60, values)
        out.append(block)
        count, row = combine(block.counts, [block.row(i) for i in range(60)])
        hours = hours.with_row(h, count, row, merge=False)
    return out, hours


def fill(store: RedisStateStore, nodes: int, days: int, now: float) -> None:
    """``days`` of rollups ending now for ``nodes`` nodes, through the store's API (encoded once per series)."""
    first = HOUR.block_start(now) - days * DAY  # whole days, ending at midnight UTC today
    rng = np.random.default_rng(17)
    for series in range(SERIES):
        for day in range(days):
            minutes = simulated_day(rng, day, gpu=series >= 7)
            blocks, hours = blocks_of("x", first + day * DAY, minutes)
            records = [(b, rollup_codec.encode(b)) for b in [*blocks, hours]]
            for node in range(series, nodes, SERIES):
                name = f"node-{node:03d}"
                store._keep_blocks([(_renamed(b, name), record) for b, record in records])


def _renamed(block: Block, node: str) -> Block:
    return Block(node, block.tier, block.start, block.slots, block.counts, block.values)


@dataclass
class RawHistory:
    """An hour of raw history at 2 s for ``nodes`` nodes in each encoding, and what it costs."""

    json_bytes: float  # MEMORY USAGE per sample, JSON records (the previous version's key)
    packed_bytes: float  # the same samples as compact records (this version's key)
    msgpack_bytes: float  # the same samples as msgpack arrays (measured for comparison only)
    record: int  # one JSON record's length
    json_read: float  # history() of every node, JSON
    packed_read: float  # history() of every node, compact
    rows: int


def raw_history(server: RedisServer, nodes: int, runs: int) -> RawHistory:
    """Fill an hour of samples per node, varied per sample from this host's real one, into the keys a store
    reads: JSON into the legacy key of nodes ``json-*`` (as the previous version wrote), compact records
    (:func:`raw_codec.pack`, what ``put`` writes) into the history key of nodes ``packed-*``; then compare
    ``MEMORY USAGE`` per sample and ``history()`` over the hour."""
    store = RedisStateStore(server.url, socket_timeout=30.0)
    base = LocalSampler.from_settings(load_config(node_name="raw-bytes")).sample()
    rng = np.random.default_rng(3)
    client = server.client()
    t0 = time.time() - 3600
    packer = msgspec.msgpack.Encoder()
    for n in range(nodes):
        pipe = client.pipeline(transaction=False)
        for i in range(1800):
            snap = msgspec.structs.replace(
                base,
                node=f"n-{n:03d}",
                time=t0 + 2 * i,
                cpu_percent=float(rng.uniform(0, 100)),
                load_1=float(rng.uniform(0, 8)),
                mem_used_bytes=int(base.mem_total_bytes * rng.uniform(0.2, 0.6)),
                net_rx_bps=float(rng.exponential(1e6)),
                net_tx_bps=float(rng.exponential(1e5)),
                disk_read_bps=float(rng.exponential(1e5)),
                disk_write_bps=float(rng.exponential(1e5)),
            )
            snap = msgspec.structs.replace(snap, mem_available_bytes=snap.mem_total_bytes - snap.mem_used_bytes)
            record = orjson.dumps(snap.to_dict())
            pipe.zadd(store.legacy_hist_key(f"json-{n:03d}"), {record: snap.time})
            pipe.zadd(store.hist_key(f"packed-{n:03d}"), {raw_codec.pack(record): snap.time})
            if n == 0:
                pipe.zadd("bench:msgpack", {packer.encode(msgspec.structs.astuple(snap)): snap.time})
        pipe.execute()
    per_sample = {k: client.memory_usage(k, samples=0) / 1800 for k in (
        store.legacy_hist_key("json-000"), store.hist_key("packed-000"), "bench:msgpack"
    )}  # fmt: skip
    json_read, rows = median_time(lambda: store.history(t0 - 1, nodes=[f"json-{n:03d}" for n in range(nodes)]), runs)
    packed_read, _ = median_time(lambda: store.history(t0 - 1, nodes=[f"packed-{n:03d}" for n in range(nodes)]), runs)
    size = len(orjson.dumps(base.to_dict()))
    store.close()
    for n in range(nodes):
        client.delete(store.legacy_hist_key(f"json-{n:03d}"), store.hist_key(f"packed-{n:03d}"))
    json_b, packed_b, msgpack_b = per_sample.values()
    return RawHistory(json_b, packed_b, msgpack_b, size, json_read, packed_read, len(rows))  # type: ignore[arg-type]


def median_time(fn: object, runs: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(runs):
        start = time.perf_counter()
        value = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--raw-nodes", type=int, default=20, help="nodes of raw history for the bytes and the read")
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        raw = raw_history(server, args.raw_nodes, max(args.runs // 2, 1))
        per_day = DAY / 2
        store = RedisStateStore(server.url, socket_timeout=30.0)
        now = time.time()
        started = time.perf_counter()
        fill(store, args.nodes, args.days, now)
        filled = time.perf_counter() - started
        client = server.client()
        node = "node-000"  # a series without a GPU (most nodes have none)
        gpu_node = "node-007" if args.nodes > 7 else node
        minute_bytes = client.memory_usage(store.roll_key(MINUTE, node), samples=0) / args.days
        minute_gpu = client.memory_usage(store.roll_key(MINUTE, gpu_node), samples=0) / args.days
        hour_bytes = client.memory_usage(store.roll_key(HOUR, node), samples=0) / args.days
        print(
            f"### Redis bytes per node per day (2 s samples; MEMORY USAGE; {args.days} days filled in {filled:.1f} s)"
        )
        print()
        print("| tier | per sample / row | per node per day | kept | per node, all kept |")
        print("|---|---:|---:|---|---:|")
        for name, size in (
            ("raw, JSON (before)", raw.json_bytes),
            ("raw, compact: JSON deflated with a preset dictionary (after)", raw.packed_bytes),
            ("raw, msgpack arrays (measured only)", raw.msgpack_bytes),
        ):
            kept_hour = f"{size * 1800 / 1000:,.0f} KB"
            print(f"| {name} | {size:,.0f} B | {size * per_day / 1000:,.0f} KB | history_window (1 h) | {kept_hour} |")
        a_week = f"{raw.packed_bytes * per_day * 7 / 1e6:,.0f} MB"
        print(f"| raw kept a week, compact (the alternative) | | | 7 days | {a_week} |")
        for name, size, kept, days in (
            ("1-minute rollups", minute_bytes, "7 days", 7),
            ("1-minute rollups, node with a GPU", minute_gpu, "7 days", 7),
            ("1-hour rollups", hour_bytes, "90 days", 90),
        ):
            rows = 1440 if "minute" in name else 24
            print(f"| {name} | {size / rows:,.0f} B | {size / 1000:,.1f} KB | {kept} | {size * days / 1000:,.0f} KB |")
        print(f"\n(JSON record of this host: {raw.record} bytes before Redis's own overhead.)\n")
        print(f"### history() of an hour of {args.raw_nodes} nodes ({raw.rows:,} samples; median)")
        print()
        print("| records | time |")
        print("|---|---:|")
        print(f"| JSON (before) | {fmt_time(raw.json_read)} |")
        print(f"| compact (after) | {fmt_time(raw.packed_read)} |")
        print()

        settings = load_config(redis_url=server.url, cache_enabled=False, history_window=3600.0)
        reader = Client(settings, sample_local=False)
        week, frame = median_time(lambda: reader.metrics("7d"), args.runs)
        day, day_frame = median_time(lambda: reader.metrics("1d"), max(args.runs // 2, 1))
        tier = MINUTE
        since = now - 7 * DAY

        def week_in_minutes() -> object:
            return frames.rollup_frame(reader.store.rollups(tier, since, None), FIELDS, "1m")

        minutes, minute_frame = median_time(week_in_minutes, 1)
        print(
            f"### metrics() over {args.nodes} nodes (Redis, query cache off; median of runs; "
            f"MAX_ROWS {rollup.MAX_ROWS:,})"
        )
        print()
        print("| call | resolution | rows | time | runs |")
        print("|---|---|---:|---:|---:|")
        for call, took, df, runs in (
            ('metrics("7d")', week, frame, args.runs),
            ('metrics("1d")', day, day_frame, max(args.runs // 2, 1)),
            ("a week of minute rows (store read + frame, not chosen)", minutes, minute_frame, 1),
        ):
            print(f"| {call} | {df.attrs['resolution']} | {len(df):,} | {fmt_time(took)} | {runs} |")  # type: ignore[attr-defined]
        reader.close()
        store.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
