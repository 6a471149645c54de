"""History beyond the raw window: each node's metric fields folded into min / mean / max per minute and per hour.

Why: raw samples cost ~727 bytes each in Redis, so a week of them at 2 s would be ~30 MB per node. "What
happened overnight?" needs minutes, not seconds, and a month needs hours. So the writer of a node's samples (the
agent, the local sampler, the Dask poller: one sampler, many readers) also folds them, as they arrive, into one
row per minute, and the minute rows of each hour into one row per hour. Readers only read the rows; nothing is
computed per request.

Pure, and free of numpy (the agent writes rollups, and stays small): no I/O and no clock. A :class:`Roller`
takes snapshots and hands back the :class:`Block` s that changed
(one hour of minute rows, one day of hour rows), which a store encodes (:mod:`clusternb.state.rollup_codec`)
and keeps. A block is rewritten whole when a minute closes, so a write lost to a Redis hiccup heals at the next
minute, and a writer that restarts reloads the block it continues (``load``) instead of overwriting it.

Rows: ``counts`` (samples folded in) and ``stats[row, field, (min, mean, max)]`` over :data:`FIELDS`, the
``metrics()`` fields (derived percentages and the GPU summary included, computed as the raw frame computes them).
A field without a value in a sample (no GPU) is left out of that row's statistics; a row where it never had one
holds NaN. An hour's mean is the minutes' means weighted by their sample counts: exactly the mean of the hour's
samples wherever the field had a value in every sample.
"""

from __future__ import annotations

import bisect
import math
import threading
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Final

from clusternb.model import NodeSnapshot
from clusternb.schema import METRIC_NAMES
from clusternb.vocab import _gpu_summary

DAY: Final = 86_400.0
NAN: Final = math.nan


@dataclass(frozen=True, slots=True)
class Tier:
    """A resolution kept beyond the raw window. ``step``: seconds per row; ``block``: seconds of rows stored as
    one record (one Redis hash field); ``retention``: how long rows are kept."""

    name: str
    step: float
    block: float
    retention: float

    @property
    def rows_per_block(self) -> int:
        return int(self.block // self.step)

    def block_start(self, t: float) -> float:
        return math.floor(t / self.block) * self.block

    def row_start(self, t: float) -> float:
        return math.floor(t / self.step) * self.step


MINUTE: Final = Tier("1m", 60.0, 3600.0, 7 * DAY)
HOUR: Final = Tier("1h", 3600.0, DAY, 90 * DAY)
#: Finest first: the order ``metrics()`` tries them in.
TIERS: Final = (MINUTE, HOUR)
TIER_BY_NAME: Final = {t.name: t for t in TIERS}
#: What ``metrics()`` says it used: raw samples, or a tier's name.
RAW: Final = "raw"
RESOLUTIONS: Final = (RAW, *(t.name for t in TIERS))
#: Rows a rolled-up ``metrics()`` may return; past it the next coarser tier answers (or the call is refused).
#: 200,000 rows with every field is a ~90 MB frame: far more points than a chart can show.
MAX_ROWS: Final = 200_000

#: The fields every row carries, in ``metrics()`` column order.
FIELDS: Final = METRIC_NAMES
STATS: Final = ("min", "mean", "max")
#: Values per row: (field, statistic) pairs, in that order.
WIDTH: Final = len(FIELDS) * len(STATS)
_GPU_PART = {"gpu_util_percent": 1, "gpu_mem_used_bytes": 2, "gpu_temperature_c": 4}
_GETTERS = tuple(attrgetter(name) for name in FIELDS if name not in _GPU_PART)


def metric_values(snap: NodeSnapshot) -> list[float]:
    """The sample's value of every field of :data:`FIELDS` (NaN where it has none), as ``metrics()`` shows it."""
    out = [NAN] * len(FIELDS)
    gpu = _gpu_summary(snap) if snap.gpus else None
    getters = iter(_GETTERS)
    for i, name in enumerate(FIELDS):
        part = _GPU_PART.get(name)
        value = (None if gpu is None else gpu[part]) if part is not None else next(getters)(snap)
        if value is not None:
            out[i] = float(value)
    return out


@dataclass(slots=True)
class Block:
    """One node's rows of one tier within one block period: ``slots`` (row offsets from ``start``, in steps,
    increasing), ``counts`` (samples per row) and ``values``, column by column: the ``rows`` values of
    (field 0, min), (field 0, mean), (field 0, max), (field 1, min)... (an ``array`` of doubles, or of floats
    as decoded). Plain Python and ``array``: the agent writes blocks, and it imports no numpy."""

    node: str
    tier: Tier
    start: float
    slots: list[int]
    counts: list[int]
    values: array[float]

    @classmethod
    def empty(cls, node: str, tier: Tier, start: float) -> Block:
        return cls(node, tier, start, [], [], array("d"))

    def __len__(self) -> int:
        return len(self.slots)

    def column(self, index: int) -> array[float]:
        """Column ``index`` (field * 3 + statistic), one value per row."""
        rows = len(self.slots)
        return self.values[index * rows : (index + 1) * rows]

    def row(self, at: int) -> list[float]:
        rows = len(self.slots)
        return [self.values[c * rows + at] for c in range(WIDTH)]

    def with_row(self, slot: int, count: int, row: Sequence[float], merge: bool) -> Block:
        """A copy with row ``slot`` set to ``(count, row)``, or, with ``merge``, folded into the row already
        there (a writer restarted within the minute, or a clock stepped back)."""
        rows = len(self.slots)
        at = bisect.bisect_left(self.slots, slot)
        replace = at < rows and self.slots[at] == slot
        if replace and merge:
            count, row = combine([self.counts[at], count], [self.row(at), list(row)])
        values, source = array("d"), self.values
        if source.typecode != "d":  # decoded floats: the block continues in doubles
            source = array("d", source.tolist())
        for c in range(WIDTH):
            column = source[c * rows : (c + 1) * rows]
            values.extend(column[:at])
            values.append(row[c])
            values.extend(column[at + 1 if replace else at :])
        slots, counts = list(self.slots), list(self.counts)
        if replace:
            counts[at] = count
        else:
            slots.insert(at, slot)
            counts.insert(at, count)
        return Block(self.node, self.tier, self.start, slots, counts, values)

    def between(self, since: float, until: float | None) -> Block:
        """The rows whose start is within ``[since, until]``."""
        step, start = self.tier.step, self.start
        keep = [
            i
            for i, s in enumerate(self.slots)
            if since <= start + s * step and (until is None or start + s * step <= until)
        ]
        if len(keep) == len(self.slots):
            return self
        rows = len(self.slots)
        values = array(self.values.typecode, (self.values[c * rows + i] for c in range(WIDTH) for i in keep))
        return Block(self.node, self.tier, start, [self.slots[i] for i in keep], [self.counts[i] for i in keep], values)


def combine(counts: Sequence[int], rows: Sequence[Sequence[float]]) -> tuple[int, list[float]]:
    """Rows folded into one: lowest min, highest max, means weighted by sample counts (NaN ignored)."""
    out = [NAN] * WIDTH
    for f in range(0, WIDTH, 3):
        low, high, weight, total = math.inf, -math.inf, 0, 0.0
        for count, row in zip(counts, rows, strict=True):
            mean = row[f + 1]
            if not math.isnan(mean):  # the field had values in that row
                low, high = min(low, row[f]), max(high, row[f + 2])
                weight += count
                total += mean * count
        if weight:
            out[f : f + 3] = [low, min(max(total / weight, low), high), high]
    return sum(counts), out


class _Minute:
    """The open minute of one node: running min, sum and max of each field and how many values each got."""

    __slots__ = ("count", "high", "low", "present", "start", "total")

    def __init__(self, start: float) -> None:
        n = len(FIELDS)
        self.start = start
        self.count = 0
        self.low = [math.inf] * n
        self.high = [-math.inf] * n
        self.total = [0.0] * n
        self.present = [0] * n

    def add(self, values: list[float]) -> None:
        self.count += 1
        low, high, total, present = self.low, self.high, self.total, self.present
        for i, v in enumerate(values):
            if not math.isnan(v):
                low[i] = min(low[i], v)
                high[i] = max(high[i], v)
                total[i] += v
                present[i] += 1

    def row(self) -> list[float]:
        out = [NAN] * WIDTH
        for i, n in enumerate(self.present):
            if n:
                low, high = self.low[i], self.high[i]
                # The sum's rounding may put a mean an ulp outside [min, max]; readers check that order.
                out[3 * i : 3 * i + 3] = [low, min(max(self.total[i] / n, low), high), high]
        return out


Load = Callable[[str, Tier, float], "Block | None"]
#: Closed minutes a node keeps while the blocks they go into cannot be loaded (two hours); the oldest go first.
MAX_PENDING: Final = 120
#: A node whose open minute is this much older than the newest minute any node opened is flushed and forgotten
#: (a Dask worker gone, renamed or replaced): the roller's state stays the size of the nodes sampling now.
IDLE: Final = 300.0


class Roller:
    """Folds the samples of any number of nodes into rows; thread-safe (a sampler and a Dask poller may share it).

    :meth:`add` returns the blocks that changed when a sample opens a new minute (the closed minute's block and
    the day block holding its hour's row); :meth:`flush` closes open minutes (a node leaving, a store closing).
    ``load(node, tier, start)``: the block a store already holds, read when the roller first touches a block
    (None: none), so a restarted writer continues it.
    """

    def __init__(self, load: Load | None = None) -> None:
        self._load = load or (lambda node, tier, start: None)
        self._open: dict[str, _Minute] = {}
        # Closed minutes not folded into their blocks yet: a block they go into could not be loaded.
        self._pending: dict[str, list[_Minute]] = {}
        self._blocks: dict[tuple[str, str], Block] = {}
        self._lock = threading.Lock()
        self._swept = -math.inf  # the minute of the last sweep for idle nodes
        #: Minutes whose blocks could not be loaded (each tried again when the node's next minute closes).
        self.load_failures = 0

    def add(self, snap: NodeSnapshot) -> list[Block]:
        minute = MINUTE.row_start(snap.time)
        values = metric_values(snap)
        with self._lock:
            current = self._open.get(snap.node)
            changed: list[Block] = []
            if current is None or current.start != minute:
                if current is not None:
                    pending = self._pending.setdefault(snap.node, [])
                    pending.append(current)
                    del pending[:-MAX_PENDING]  # the oldest go first when loads fail for hours
                    changed = self._drain(snap.node)
                current = self._open[snap.node] = _Minute(minute)
                if minute > self._swept:  # at most once a minute: every idle node's open minute closed, forgotten
                    self._swept = minute
                    for name in [n for n, m in self._open.items() if m.start < minute - IDLE]:
                        changed = changed + self._forget(name)
            current.add(values)  # folded even when a block load failed: the sample is never dropped
            return changed

    def flush(self, node: str | None = None) -> list[Block]:
        """Close the open minute of ``node`` (None: of every node) and return the blocks that changed. Minutes
        whose blocks cannot be loaded now are dropped (counted in :attr:`load_failures`)."""
        with self._lock:
            if node is None:
                names = list(dict.fromkeys([*self._open, *self._pending]))
            else:
                names = [node] if node in self._open or node in self._pending else []
            changed: list[Block] = []
            for name in names:
                changed += self._forget(name)
            return changed

    def _forget(self, name: str) -> list[Block]:
        """Close the node's open minute, fold what can be, and drop everything the roller holds of it."""
        minute = self._open.pop(name, None)
        if minute is not None:
            self._pending.setdefault(name, []).append(minute)
        changed = self._drain(name)
        self._pending.pop(name, None)
        self._blocks.pop((name, MINUTE.name), None)
        self._blocks.pop((name, HOUR.name), None)
        return changed

    def _drain(self, node: str) -> list[Block]:
        """Fold the node's closed minutes into their blocks, oldest first, until a load fails; the blocks that
        changed, each once (its newest version)."""
        pending = self._pending.get(node, [])
        changed: dict[tuple[str, float], Block] = {}
        while pending:
            try:
                blocks = self._close(node, pending[0])
            except Exception:  # the store could not be read (Redis down): the minute waits for the next close
                self.load_failures += 1
                break
            del pending[0]
            for block in blocks:
                changed[(block.tier.name, block.start)] = block
        if not pending:
            self._pending.pop(node, None)
        return list(changed.values())

    def _close(self, node: str, minute: _Minute) -> list[Block]:
        # Both blocks are loaded before either is changed: a failed load leaves the roller as it was, so the
        # minute is folded in exactly once when it is tried again.
        block = self._block(node, MINUTE, minute.start)
        days = self._block(node, HOUR, block.start)
        slot = int((minute.start - block.start) // MINUTE.step)
        block = block.with_row(slot, minute.count, minute.row(), merge=True)
        count, hour_row = combine(block.counts, [block.row(i) for i in range(len(block))])
        slot = int((block.start - days.start) // HOUR.step)
        days = days.with_row(slot, count, hour_row, merge=False)
        self._blocks[(node, MINUTE.name)] = block
        self._blocks[(node, HOUR.name)] = days
        return [block, days]

    def _block(self, node: str, tier: Tier, t: float) -> Block:
        start = tier.block_start(t)
        held = self._blocks.get((node, tier.name))
        if held is not None and held.start == start:
            return held
        return self._load(node, tier, start) or Block.empty(node, tier, start)


def fold(snapshots: Iterable[NodeSnapshot]) -> dict[tuple[str, str, float], Block]:
    """Every block the samples make, by (node, tier, start): what a store holds after a writer put them all
    (and flushed). For tests and tools; writers use a :class:`Roller`."""
    out: dict[tuple[str, str, float], Block] = {}
    roller = Roller(lambda node, tier, start: out.get((node, tier.name, start)))
    for snap in snapshots:
        for block in roller.add(snap):
            out[(block.node, block.tier.name, block.start)] = block
    for block in roller.flush():
        out[(block.node, block.tier.name, block.start)] = block
    return out


def block_starts(tier: Tier, since: float, until: float) -> list[float]:
    """The starts of the blocks holding rows within ``[since, until]``, oldest first (within the retention)."""
    first = tier.block_start(max(since, until - tier.retention - tier.block, 0.0))
    count = int((tier.block_start(until) - first) // tier.block) + 1
    return [first + i * tier.block for i in range(max(count, 0))]


def choose(since: float, until: float | None, now: float, window: float, nodes: int) -> str:
    """The resolution ``metrics(since, until)`` answers at: raw samples when the raw window covers ``since``,
    else the finest tier whose retention covers it and whose rows stay under :data:`MAX_ROWS`; a range older
    than every retention gets the coarsest tier (with what it keeps). ``ValueError`` when even that is too many
    rows, with the numbers to narrow it."""
    if since >= now - window:
        return RAW
    end = now if until is None else min(until, now)
    rows = {t.name: max(nodes, 1) * math.ceil(max(end - max(since, now - t.retention), 0.0) / t.step) for t in TIERS}
    for tier in TIERS:
        if since >= now - tier.retention and rows[tier.name] <= MAX_ROWS:
            return tier.name
    coarsest = TIERS[-1]
    if rows[coarsest.name] <= MAX_ROWS:
        return coarsest.name
    raise ValueError(
        f"{rows[coarsest.name]:,} rows at {coarsest.name} resolution for {nodes} nodes: more than {MAX_ROWS:,}; "
        "choose fewer nodes or a shorter range"
    )
