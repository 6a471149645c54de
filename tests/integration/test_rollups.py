"""History beyond the raw window (issue 17 item 2): rollups folded by the writer, kept by both stores, read back
checked, and chosen by ``metrics()``. Correctness is judged against pandas ``resample`` on the same raw samples.
"""

from __future__ import annotations

import math
import time
import zlib
from array import array
from collections.abc import Callable, Iterator

import msgspec
import numpy as np
import pandas as pd
import pytest

from clusternb import frames, schema
from clusternb.config import load_config
from clusternb.model import NodeSnapshot
from clusternb.queries import Client
from clusternb.state import rollup, rollup_codec
from clusternb.state.base import StateStore
from clusternb.state.bounds import HistoryBounds
from clusternb.state.memory import MemoryStateStore
from clusternb.state.redis import RedisStateStore
from clusternb.state.rollup import FIELDS, HOUR, MINUTE, WIDTH, Block
from tests.helpers import make_gpu, make_snapshot
from tests.redis_server import RedisServer

StoreFactory = Callable[[], StateStore]
T0 = 1_700_000_000.0  # 22:13:20 UTC: the samples start inside a minute and an hour, as real ones do
#: Relative error of a stored statistic (12 significant bits), and a little more for an hour's weighted mean.
RTOL = 5e-4


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    made: list[StateStore] = []

    def make() -> StateStore:
        if request.param == "memory":
            store: StateStore = MemoryStateStore(window=3600.0)
        else:
            server = request.getfixturevalue("redis_server")
            store = RedisStateStore(server.url, HistoryBounds(window=3600.0), socket_timeout=5.0)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def random_samples(hours: float, every: float = 5.0, seed: int = 0) -> list[NodeSnapshot]:
    """Two nodes sampled every ``every`` seconds with random values; node "g" has a GPU, node "c" none."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(int(hours * 3600 / every)):
        for node in ("c", "g"):
            total = 64 * 2**30
            used = int(rng.integers(0, total))
            gpus = (make_gpu(0, util_percent=float(rng.uniform(0, 100)), temperature_c=float(rng.uniform(30, 90))),)
            out.append(
                make_snapshot(
                    node,
                    time=T0 + i * every + float(rng.uniform(0, 1)),
                    cpu_percent=float(rng.uniform(0, 100)),
                    load_1=float(rng.exponential(4)),
                    mem_total_bytes=total,
                    mem_used_bytes=used,
                    disk_read_bps=float(rng.exponential(1e6)),
                    net_rx_bps=float(rng.exponential(1e7)) * float(rng.random() < 0.5),
                    gpus=gpus if node == "g" else (),
                )
            )
    return out


def resampled(samples: list[NodeSnapshot], rule: str) -> pd.DataFrame:
    """pandas' answer: the raw metrics frame, per node, resampled to min / mean / max."""
    raw = frames.metrics_frame(samples, FIELDS).astype({f: "float64" for f in FIELDS})
    grouped = raw.set_index("time").groupby("node")[list(FIELDS)].resample(rule)
    stats = pd.concat({"min": grouped.min(), "mean": grouped.mean(), "max": grouped.max()}, axis=1)
    return stats.dropna(how="all")


def compare(blocks: list[Block], want: pd.DataFrame, resolution: str) -> None:
    got = frames.rollup_frame(blocks, FIELDS, resolution).set_index(["node", "time"]).sort_index()
    assert got.attrs["resolution"] == resolution
    assert list(got.index) == list(want.index)
    for field in FIELDS:
        whole = got[field].dtype == "Int64"  # bytes: the mean is rounded to a whole byte
        for stat, column in (("min", f"{field}_min"), ("mean", field), ("max", f"{field}_max")):
            have = got[column].astype("float64").to_numpy()
            np.testing.assert_allclose(
                have, want[(stat, field)], rtol=RTOL, atol=1.0 if whole else 1e-9, err_msg=column
            )


def test_rollups_match_pandas_resample(make_store: StoreFactory) -> None:
    samples = random_samples(hours=2.5)
    store = make_store()
    for snap in samples:
        store.put(snap)
    for node in ("c", "g"):
        store.leave(node, T0 + 9000)  # closes the open minute
    since, until = T0 - 86_400, T0 + 86_400
    minutes = store.rollups(MINUTE, since, until)
    compare(minutes, resampled(samples, "1min"), "1m")
    assert {b.node for b in minutes} == {"c", "g"} == set(store.rolled_nodes())
    compare(store.rollups(HOUR, since, until), resampled(samples, "1h"), "1h")
    counts = frames.rollup_frame(minutes, ["cpu_percent"], "1m")["samples"]
    assert counts.sum() == len(samples)


def test_a_restarted_writer_continues_the_block_it_finds(redis_server: RedisServer) -> None:
    samples = random_samples(hours=0.5)
    first = RedisStateStore(redis_server.url, socket_timeout=5.0)
    for snap in samples[: len(samples) // 2]:
        first.put(snap)
    first.close()  # writes its open minutes
    second = RedisStateStore(redis_server.url, socket_timeout=5.0)
    for snap in samples[len(samples) // 2 :]:
        second.put(snap)
    second.close()
    reader = RedisStateStore(redis_server.url, socket_timeout=5.0)
    compare(reader.rollups(MINUTE, 0, T0 + 86_400), resampled(samples, "1min"), "1m")
    compare(reader.rollups(HOUR, 0, T0 + 86_400), resampled(samples, "1h"), "1h")
    reader.close()


# -- the resolution metrics() answers at -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "until", "nodes", "expected"),
    [
        (-1800, None, 2, "raw"),  # within the raw window
        (-3600, None, 2, "raw"),
        (-86_400, None, 2, "1m"),  # a day
        (-7 * 86_400, None, 2, "1m"),  # a week: minutes are kept that long
        (-30 * 86_400, None, 2, "1h"),  # a month: hours only
        (-200 * 86_400, None, 2, "1h"),  # older than every retention: what the hours keep
        (-7 * 86_400, None, 100, "1h"),  # a week of 100 nodes in minutes: 1,008,000 rows, over MAX_ROWS
        (-7 * 86_400, -6 * 86_400, 100, "1m"),  # one day of them, a week ago: 144,000 rows
    ],
)
def test_the_finest_resolution_that_covers_the_range(
    since: float, until: float | None, nodes: int, expected: str
) -> None:
    now = T0
    end = None if until is None else now + until
    assert rollup.choose(now + since, end, now, 3600.0, nodes) == expected


def test_a_range_too_large_for_any_resolution_is_refused() -> None:
    with pytest.raises(ValueError, match="rows at 1h resolution for 10000 nodes"):
        rollup.choose(T0 - 90 * 86_400, None, T0, 3600.0, 10_000)


def test_metrics_says_which_resolution_it_used(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    store = MemoryStateStore(window=3600.0)
    for i in range(0, 40 * 86_400, 600):  # 40 days, one sample per node every 10 minutes
        for node in ("a", "b"):
            store.put(make_snapshot(node, time=now - 40 * 86_400 + i, cpu_percent=float(i % 100)))
    client = Client(load_config(), store=store, sample_local=False)
    try:
        raw = client.metrics("30m", fields=["cpu_percent"])
        assert raw.attrs["resolution"] == "raw"
        assert list(raw.columns) == ["time", "node", "cpu_percent"]  # as before rollups
        for since, resolution, step in (("1d", "1m", 600), ("7d", "1m", 600), ("30d", "1h", 3600)):
            df = client.metrics(since, fields=["cpu_percent", "mem_used_bytes"])
            assert df.attrs["resolution"] == resolution, since
            assert list(df.columns) == [
                "time", "node", "cpu_percent", "mem_used_bytes", "cpu_percent_min", "cpu_percent_max",
                "mem_used_bytes_min", "mem_used_bytes_max", "samples",
            ]  # fmt: skip
            assert str(df["mem_used_bytes"].dtype) == "Int64" and str(df["time"].dtype) == "datetime64[ns, UTC]"
            times = df[df["node"] == "a"]["time"]
            assert (times.diff().dropna() == pd.Timedelta(seconds=step)).all(), since
            assert times.min() >= pd.Timestamp(
                now - pd.Timedelta(since.replace("d", "D")).total_seconds() - step, unit="s", tz="UTC"
            )
        monkeypatch.setattr(rollup, "MAX_ROWS", 500)  # a week of minutes of two nodes no longer fits: hours
        assert client.metrics("7d").attrs["resolution"] == "1h"
        assert client.metrics("7d", node="a").attrs["resolution"] == "1h"
        monkeypatch.setattr(rollup, "MAX_ROWS", 100)
        with pytest.raises(ValueError, match="choose fewer nodes or a shorter range"):
            client.metrics("30d")
    finally:
        client.close()


# -- untrusted records and bounds ---------------------------------------------------------------------------


def _record(block: Block, values: list[float] | None = None, **header: object) -> bytes:
    """A record as a writer that skips the rounding and clipping would make it (``values`` unchecked)."""
    good = msgspec.msgpack.decode(rollup_codec.encode(block), type=rollup_codec.Header)
    if values is not None:
        raw = array("f", values).tobytes()
        shuffled = b"".join(raw[i::4] for i in range(4))
        columns = array("B", block.slots).tobytes() + array("I", block.counts).tobytes() + shuffled
        good = msgspec.structs.replace(good, payload=zlib.compress(columns))
    return msgspec.msgpack.encode(msgspec.structs.replace(good, **header))


@pytest.fixture(params=["numpy", "plain"])
def checks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Records checked by the vectorised checks (readers) and by the plain-Python ones (the agent, no numpy)."""
    if request.param == "plain":
        monkeypatch.setattr(
            rollup_codec, "_check_values_numpy", lambda np, values, rows: rollup_codec._check_values(values, rows)
        )
    return str(request.param)


def test_hostile_rollup_records_are_skipped_counted_and_pruned(redis_server: RedisServer, checks: str) -> None:
    store = RedisStateStore(redis_server.url, socket_timeout=5.0)
    samples = [make_snapshot("n", time=T0 + i * 10) for i in range(24 * 360)]  # a day: 24 blocks of minutes
    for snap in samples:
        store.put(snap)
    store.leave("n", T0 + 86_400)
    client = redis_server.client()
    key = store.roll_key(MINUTE, "n")
    fields = sorted(client.hkeys(key), key=float)
    assert len(fields) == 25  # the day spans 25 clock hours
    good = rollup_codec.decode(client.hget(key, fields[0]), "n", MINUTE, float(fields[0]))
    rows = len(good)
    assert FIELDS[0] == "cpu_percent"  # its min, mean and max are the first three columns
    absurd = [1e9] * 3 * rows + good.values.tolist()[3 * rows :]
    unordered = [99.0] * rows + good.values.tolist()[rows:]  # min above the mean
    gpu_mem = 3 * FIELDS.index("gpu_mem_used_bytes") * rows  # a sum of GPUs: its bound is derived
    infinite = good.values.tolist()
    infinite[gpu_mem : gpu_mem + 3 * rows] = [math.inf] * 3 * rows
    bomb = msgspec.structs.replace(
        msgspec.msgpack.decode(client.hget(key, fields[0]), type=rollup_codec.Header),
        payload=zlib.compress(b"\0" * 50_000_000),
    )

    def at(i: int, values: list[float] | None = None, **header: object) -> bytes:
        return _record(good, values, **{"start": float(fields[i]), **header})  # the record of block i

    hostile = {
        fields[1]: b"\x80\x04\x95 pickle",
        fields[2]: b"not msgpack at all",
        fields[3]: at(3, absurd),
        fields[4]: at(4, unordered),
        fields[5]: at(5, start=float(fields[0])),  # another block's record
        fields[6]: at(6, format=99),
        fields[7]: at(7, rows=1000),
        fields[8]: msgspec.msgpack.encode(msgspec.structs.replace(bomb, start=float(fields[8]))),
        fields[9]: at(9, fields=12345),
        fields[10]: at(10, tier="1h"),
        fields[11]: at(11, infinite),
    }
    client.hset(key, mapping=hostile)
    reader = RedisStateStore(redis_server.url, socket_timeout=5.0)
    blocks = reader.rollups(MINUTE, 0, T0 + 2 * 86_400, ["n"])
    assert len(blocks) == 25 - len(hostile)
    assert all(abs(mean - 12.5) < 0.01 for b in blocks for mean in b.column(1))  # only good rows
    counted = {reason for (kind, node, reason) in reader.rejections.counts() if kind == "rollup" and node == "n"}
    assert len(counted) == 8, counted  # non-records alike, misplaced records alike; bounds name their field
    assert not any(client.hexists(key, field) for field in hostile)  # pruned: still the rejected bytes
    client.delete(store.roll_key(HOUR, "n"))
    client.set(store.roll_key(HOUR, "n"), b"a string where a hash belongs")
    assert reader.rollups(HOUR, 0, T0 + 2 * 86_400, ["n"]) == []
    assert any("unreadable" in reason for (kind, _, reason) in reader.rejections.counts() if kind == "rollup")
    for s in (store, reader):
        s.close()


def test_decoding_checks_every_row(checks: str) -> None:
    start = 3600.0 * 10
    block = Block("n", MINUTE, start, [0, 5], [30, 30], array("d", [1.0] * WIDTH * 2))
    assert len(rollup_codec.decode(rollup_codec.encode(block), "n", MINUTE, start)) == 2
    backwards = Block("n", MINUTE, start, [5, 0], block.counts, block.values)
    empty_row = Block("n", MINUTE, start, block.slots, [0, 30], block.values)
    for bad, why in ((backwards, "out of order"), (empty_row, "impossible sample count")):
        with pytest.raises(ValueError, match=why):
            rollup_codec.decode(_record(bad), "n", MINUTE, start)
    partial = block.values.tolist()
    partial[3 * 2] = math.nan  # load_1's min missing in the first row, its mean and max there
    with pytest.raises(ValueError, match="some of min/mean/max missing"):
        rollup_codec.decode(_record(block, partial), "n", MINUTE, start)
    with pytest.raises(ValueError, match="not the block its key names"):
        rollup_codec.decode(rollup_codec.encode(block), "n", HOUR, start)


def test_rollups_stay_bounded_whatever_the_clocks_do(make_store: StoreFactory) -> None:
    store = make_store()
    assert isinstance(store, MemoryStateStore | RedisStateStore)
    now = MINUTE.block_start(time.time())

    def write(*starts: float) -> list[float]:
        for start in starts:
            block = Block("n", MINUTE, start, [0], [1], array("d", [1.0] * WIDTH))
            store._keep_blocks([(block, rollup_codec.encode(block))])
        if isinstance(store, RedisStateStore):
            return sorted(float(f) for f in store.link.client().hkeys(store.roll_key(MINUTE, "n")))
        return sorted(store._rolls[("n", MINUTE.name)])

    week = int(MINUTE.retention // MINUTE.block)
    kept = write(*(now - h * 3600 for h in range(10 * 24, -1, -1)))  # ten days of hour blocks
    assert len(kept) == week + 1 and kept[0] == now - MINUTE.retention
    assert write(now - 30 * 86_400) == kept  # a clock far behind: its block is gone at once
    other = Block("other", MINUTE, now, [0], [1], array("d", [1.0] * WIDTH))
    store._keep_blocks([(other, rollup_codec.encode(other))])
    ahead = write(*(now + 365 * 86_400 + h * 3600 for h in range(200)))  # a clock a year ahead, for 200 hours
    assert ahead == kept  # blocks later than the clock allows are dropped: they cannot crowd out the week
    assert store.rolled_nodes() == ["n", "other"]  # and that writer did not unlist the other node
    if isinstance(store, RedisStateStore):
        client = store.link.client()
        client.zadd(store.prefix + "rolled", {"ahead": now + 365 * 86_400})  # a stray entry
        assert store.rolled_nodes() == ["n", "other"]  # the registry is read up to the clock and the skew
        assert 0 < client.ttl(store.roll_key(MINUTE, "n")) <= MINUTE.retention + MINUTE.block
        assert 0 < client.ttl(store.prefix + "rolled") <= HOUR.retention + HOUR.block


@pytest.mark.parametrize("count", [rollup_codec.COUNT_MAX, 100_000_000])
def test_hostile_sample_counts_never_break_the_writer(make_store: StoreFactory, count: int) -> None:
    """59 minute rows claiming ``count`` samples each: their hour row must still encode (uint32) and decode."""
    store = make_store()
    assert isinstance(store, MemoryStateStore | RedisStateStore)
    start = MINUTE.block_start(T0)
    rows = 59
    values = [math.nan] * WIDTH * rows
    values[: 3 * rows] = [1.0] * rows + [2.0] * rows + [3.0] * rows  # cpu_percent's min, mean, max
    hostile = Block("n", MINUTE, start, list(range(1, rows + 1)), [count] * rows, array("d", values))
    store._keep_blocks([(hostile, _record(hostile, values))])  # the counts as written, unclamped
    store.put(make_snapshot("n", time=start + 1))
    store.put(make_snapshot("n", time=start + 61))  # closes minute 0 into the block it finds
    store.leave("n", start + 62)
    hours = store.rollups(HOUR, start, start + 3600, ["n"])
    assert len(hours) == 1 and 1 <= hours[0].counts[0] <= rollup_codec.COUNT_MAX
    assert store.rollup_write_failures == 0


def test_every_rolled_field_has_finite_bounds() -> None:
    for name in FIELDS:
        f = schema.field("metrics", name)
        assert f.min is not None and f.max is not None and math.isfinite(f.min) and math.isfinite(f.max), name
        if f.dtype == "Int64":
            assert f.max <= 2**63 - 2**40, name  # a float32 at the bound still casts to int64


def test_an_absurd_gpu_memory_is_rejected_not_shown(checks: str) -> None:
    start = 3600.0 * 1000
    values = [math.nan] * WIDTH
    values[:3] = [1.0, 2.0, 3.0]  # cpu_percent
    g = 3 * FIELDS.index("gpu_mem_used_bytes")
    values[g : g + 3] = [3e38] * 3  # float32 takes it; int64 does not
    block = Block("n", MINUTE, start, [0], [5], array("d", values))
    with pytest.raises(ValueError, match="gpu_mem_used_bytes outside its bounds"):
        rollup_codec.decode(_record(block, values), "n", MINUTE, start)
    written = rollup_codec.decode(rollup_codec.encode(block), "n", MINUTE, start)  # the writer clips
    got = frames.rollup_frame([written], ("gpu_mem_used_bytes",), "1m")
    top = schema.field("metrics", "gpu_mem_used_bytes").max
    assert 0 <= got["gpu_mem_used_bytes"].iloc[0] <= got["gpu_mem_used_bytes_max"].iloc[0] <= top


def test_an_until_in_the_future_still_returns_the_rows(make_store: StoreFactory) -> None:
    store = make_store()
    assert isinstance(store, MemoryStateStore | RedisStateStore)
    now = time.time()
    hour = MINUTE.block_start(now - 3 * 86_400)  # one block of minutes, one of hours
    for i in range(5):
        store.put(make_snapshot("a", time=hour + 60 * i))
    store.leave("a", now)
    since = now - 4 * 86_400
    assert len(store.rollups(MINUTE, since)) == 1
    assert len(store.rollups(MINUTE, since, now + 30 * 86_400)) == 1
    assert len(store.rollups(HOUR, since, now + 365 * 86_400)) == 1
