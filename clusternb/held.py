"""What a caller holding a query's last result (a live panel) may keep, or extend, instead of a recompute.

Every query is cached under a key made of the store's generation and a clock bucket (:mod:`clusternb.queries`),
so for every caller ages and liveness are never older than one sampling interval. A panel re-asks every few
seconds, so at rest the bucket alone made it recompute and hash its workers, cluster and alerts frames on
each tick (and its metrics frame every 30 s), although nothing it shows had changed; and one new sample
rebuilt the whole ten-minute metrics frame. A caller that passes its last result (``held``) gets instead:

- ``workers``, ``cluster``, ``alerts`` (without ``since``): the held result itself while everything it was
  computed from is unchanged (:func:`inputs`: the store's generation, the alert records, the Dask summary and
  probe results, where the shared state comes from) and no node can have changed status since it was made
  (:func:`next_status_change`). Only its ages (``age_s``, ``as_of``, ``data_age_s``) then lag, and a panel
  shows none of them (:mod:`clusternb.widgets.views`).
- ``metrics`` over the raw window: the held frame plus only the samples newer than the newest it holds of
  each node (:func:`newer`), less the rows that left the window (:func:`extend`), at the cost of the new
  samples. That is what a recompute on the same store gives only while no sample came late (older than the
  newest of its node the frame holds): the samples found must number the store's writes since the frame's
  generation, or the frame is recomputed (:meth:`HeldQueries._extended`); a frame of some nodes (which cannot
  count the others' writes) is recomputed whenever the generation moved. Its content hash is derived from
  the held one and what changed.

A held result is kept or extended only for the very query it answered (its name and parameters), and a
standing one at most :data:`STAND_INTERVALS` sampling intervals.

Everything else, and a held result without its basis, goes through the cache as before. Pure but for the
reads of :func:`inputs`, :func:`basis` and :func:`newer` (a generation, the alert records, the liveness view,
the new samples).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clusternb import arguments, frames

if TYPE_CHECKING:
    from clusternb.alerting.runtime import AlertRuntime
    from clusternb.cache import Cache
    from clusternb.config import ClusterNB
    from clusternb.model import NodeSnapshot
    from clusternb.queries import Client, QueryResult
    from clusternb.state.base import Liveness, StateStore

#: Queries a held result of may stand while its inputs are unchanged (see the module docstring).
STANDING: frozenset[str] = frozenset({"workers", "cluster", "alerts"})
#: Queries whose status columns follow the clock: a held result of these stands only until a node's next change.
LIVENESS: frozenset[str] = frozenset({"workers", "cluster"})
#: A standing result stands at most this many sampling intervals: what it was computed from may change without
#: a new generation (Redis expiring the records of a quiet cluster), and past a node's last threshold nothing
#: else would end it.
STAND_INTERVALS = 20


@dataclass(frozen=True, slots=True)
class Standing:
    """What a standing result was computed from (``query``: its name and parameters, as its cache key holds
    them), and until when no node's status can have changed."""

    query: tuple[str, Any]
    inputs: tuple[Any, ...]
    until: float


@dataclass(frozen=True, slots=True)
class Window:
    """What a held metrics frame covers: its query (name and parameters, as its cache key holds them), the
    store's generation it holds every sample of (it may hold some later ones) and each node's newest sample, in
    whole microseconds as the frame holds times (:func:`micros`)."""

    query: tuple[str, Any]
    generation: int
    newest: Mapping[str, int]


def inputs(client: Client, name: str) -> tuple[Any, ...]:
    """Everything but the clock that query ``name`` reads, cheap to read and compare (read *before* a compute,
    so a change racing the compute shows as a change on the next comparison)."""
    alerts = tuple(client.alerting.records())
    if name == "alerts":
        return (alerts,)
    generation = client.store.generation()
    if name == "workers":
        return (generation,)
    # The Dask summary and probe results themselves, not their ids: a freed object's id may come back.
    return (generation, alerts, client.dask_summary, tuple(client.probe_results), client.shared_state())


def next_status_change(liveness: Liveness, thresholds: Callable[[float], tuple[float, float]], after: float) -> float:
    """The first moment at or after ``after`` when a node's newest sample crosses its stale or offline threshold
    (``workers_frame``'s rule: stale once older than ``stale_after``); ``inf`` when none will."""
    soonest = math.inf
    for node, (last, interval) in liveness.seen.items():
        if node in liveness.departed:  # "left" until it samples again, which moves the generation
            continue
        stale_after, offline_after = thresholds(interval)
        for edge in (last + stale_after, last + offline_after):
            if edge >= after:
                soonest = min(soonest, edge)
                break
    return soonest


def stands(held: Standing, query: tuple[str, Any], now_inputs: tuple[Any, ...], now: float) -> bool:
    """Whether a held result still says what a recompute of ``query`` now would, ages aside."""
    return now < held.until and held.query == query and held.inputs == now_inputs


def window_of(query: tuple[str, Any], frame: pd.DataFrame, generation: int) -> Window:
    """The :class:`Window` of a freshly computed metrics frame: its newest sample per node, read from the frame
    itself (a cached frame may be from any moment at that generation)."""
    if frame.empty:
        return Window(query, generation, {})
    codes, names = pd.factorize(frame["node"].to_numpy(dtype=object))
    newest = np.full(len(names), np.iinfo(np.int64).min)
    np.maximum.at(newest, codes, _micros_of(frame))
    return Window(query, generation, dict(zip(map(str, names), newest.tolist(), strict=True)))


def micros(epoch: float) -> int:
    """A sample time as the frames hold it: whole microseconds (``frames._to_times`` rounds the same way), so a
    sample is compared with the frame's copy of it exactly."""
    return round(epoch * 1e6)


def _micros_of(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(frame["time"]).asi8 // 1000)


def newer(client: Client, window: Window, nodes: Sequence[str] | None, lo: float) -> list[NodeSnapshot]:
    """The store's samples newer than ``window`` holds (per node), not older than ``lo``: only the nodes whose
    newest sample moved are read, from the oldest point any of them needs."""
    held = window.newest
    seen = client.store.liveness().seen
    wanted = seen if nodes is None else {n: seen[n] for n in nodes if n in seen}
    moved = [n for n, (last, _) in wanted.items() if last >= lo and micros(last) > held.get(n, _NEVER)]
    if not moved:
        return []
    start = max(lo, min(held[n] / 1e6 - 1e-6 if n in held else lo for n in moved))
    fresh = client.store.history(start, None, moved)
    return [s for s in fresh if s.time >= lo and micros(s.time) > held.get(s.node, _NEVER)]


_NEVER = -(2**63)


def extend(frame: pd.DataFrame, fresh: pd.DataFrame, lo: float) -> pd.DataFrame:
    """``frame`` with the rows of ``fresh`` (same columns) in their (time, node) place and without the rows
    older than ``lo``: what :func:`~clusternb.frames.metrics_frame` gives for the union, minus the window's tail.
    Both frames are sorted by (time, node); new samples almost always come after every held one."""
    cut = int(np.searchsorted(_micros_of(frame), micros(lo), side="left"))
    kept = frame.iloc[cut:] if cut else frame
    if fresh.empty:
        out = kept.reset_index(drop=True) if cut else frame
    else:
        out = pd.concat([kept, fresh], ignore_index=True)
        if len(kept) and _key(fresh, 0) < _key(kept, len(kept) - 1):  # a late sample: put it in its place
            order = np.lexsort((out["node"].to_numpy(dtype=object), _micros_of(out)))
            out = out.take(order).reset_index(drop=True)
    out.attrs = dict(frame.attrs)
    return out


def _key(frame: pd.DataFrame, row: int) -> tuple[int, str]:
    return int(pd.DatetimeIndex(frame["time"][row : row + 1]).asi8[0]), str(frame["node"].iat[row])


def extended_hash(held_hash: str, generation: int, first: Any, rows: int) -> str:
    """A content hash for an extended frame: a function of the held frame's hash and what changed (the
    generation the new samples were read at, the first row kept, the rows now held); two extensions of one
    held frame give equal hashes only when they hold the same rows."""
    text = f"{held_hash}|{generation}|{first}|{rows}"
    return "x" + hashlib.blake2b(text.encode(), digest_size=15).hexdigest()


def metrics_window(client: Client, params: Mapping[str, Any], now: float) -> tuple[float, Sequence[str] | None] | None:
    """The raw window of a ``metrics`` query a held frame may be extended over, as (lo, nodes); None when it
    must be recomputed (an ``until``, or a start beyond the raw window, where rollups answer)."""
    if params.get("until") is not None:
        return None
    lo = arguments.parse_time(params.get("since", "15m"), now, "since")
    if lo < now - client.settings.history_window:
        return None
    node = params.get("node")
    nodes = None if node is None else [node] if isinstance(node, str) else list(node)
    return lo, nodes


def fields_of(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The metrics query's fields, checked as the query checks them."""
    return frames.check_fields(params.get("fields"))


class HeldQueries:
    """A mixin of :class:`~clusternb.queries.Client`: the queries of a caller that holds their results."""

    settings: ClusterNB
    store: StateStore
    cache: Cache
    alerting: AlertRuntime

    def _cached(
        self, namespace: str, key_params: Any, compute: Callable[[], Any], held: QueryResult | None = None
    ) -> QueryResult:
        raise NotImplementedError  # the client's: through the cache

    def _held(
        self, name: str, params: Mapping[str, Any], built: tuple[Any, Callable[[], Any]], held: QueryResult | None,
        now: float,
    ) -> QueryResult:  # fmt: skip
        """A holder's query: the held result kept or extended where it may be, else through the cache with its
        basis (what it was computed from) attached. ``built``: the query's cache key part and compute."""
        client: Client = self  # type: ignore[assignment]
        key_params, compute = built
        query = (name, key_params)
        if name in STANDING and (name != "alerts" or params.get("since") is None):
            now_inputs = inputs(client, name)
            if held is not None and isinstance(held.basis, Standing) and stands(held.basis, query, now_inputs, now):
                self.cache.served(name, 0)
                return held
            liveness = self.store.liveness() if name in LIVENESS else None
            result = self._cached(name, key_params, compute, held)
            if result is held:
                return result
            until = result.created + STAND_INTERVALS * self.settings.interval
            if liveness is not None:
                until = min(until, next_status_change(liveness, self.settings.thresholds, result.created))
            return dataclasses.replace(result, basis=Standing(query, now_inputs, until))
        window = metrics_window(client, params, now) if name == "metrics" else None
        if window is None:
            return self._cached(name, key_params, compute, held)
        generation = self.store.generation()
        if held is not None and isinstance(held.basis, Window) and held.basis.query == query:
            extended = self._extended(held, generation, window, params)
            if extended is not None:
                return extended
        result = self._cached(name, key_params, compute, held)
        if result is held:
            return result
        return dataclasses.replace(result, basis=window_of(query, result.value, generation))

    def _extended(
        self, held: QueryResult, generation: int, span: tuple[float, Sequence[str] | None], params: Mapping[str, Any]
    ) -> QueryResult | None:
        """A held metrics frame plus the samples newer than it holds, less the rows that left the window
        (``span``: its start and the nodes asked for); counted as the cache hit it stands for. None where only
        a recompute gives what a recompute gives.

        Every write to the store adds one to its generation and a put stores one sample. So, of a frame of every
        node, the extension holds every sample of the new generation exactly when the samples found number the
        generations since the frame's (read after them, so that a put racing the read counts as a miss, never
        as a find): a sample that came late (older than the newest of its node the frame holds: a backlog, a
        clock stepped back, two writers of a node), a departure or a sample found twice all break the count,
        and a recompute follows. A frame of some nodes cannot count the others' puts: it is recomputed whenever
        the generation moved (a panel asks for every node)."""
        start = time.perf_counter_ns()
        client: Client = self  # type: ignore[assignment]
        window: Window = held.basis
        lo, nodes = span
        fresh: list[NodeSnapshot] = []
        if generation != window.generation:
            if nodes is not None:
                return None
            fresh = newer(client, window, nodes, lo)
            generation = self.store.generation()
            if generation - window.generation != len(fresh):
                return None
        frame: pd.DataFrame = held.value
        added = frames.metrics_frame(fresh, fields_of(params)) if fresh else frame.iloc[:0]
        out = extend(frame, added, lo)
        self.cache.served("metrics", time.perf_counter_ns() - start)
        if out is frame:
            if generation == window.generation:
                return held
            return dataclasses.replace(held, basis=Window(window.query, generation, window.newest))
        newest = dict(window.newest)
        for snap in fresh:
            newest[snap.node] = max(micros(snap.time), newest.get(snap.node, _NEVER))
        first = _micros_of(out.iloc[:1]).tolist()
        content = extended_hash(held.content_hash, generation, first, len(out))
        return dataclasses.replace(
            held, value=out, content_hash=content, created=time.time(), basis=Window(window.query, generation, newest)
        )
