"""Pure shaping of snapshots into pandas frames, typed by the column tables of :mod:`clusternb.columns`.

Nothing here does I/O or reads a clock: ``now`` is always an argument, so the frames are reproducible in
tests. The columns, their dtypes and meanings are declared once, in :mod:`clusternb.schema`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from clusternb import arguments, columns, dtypes, schema
from clusternb.model import NodeSnapshot

if TYPE_CHECKING:  # the state package loads the stores (and redis): frames needs only the block's shape
    from clusternb.state.rollup import Block
from clusternb.vocab import _gpu_summary

# Re-exported: frames is where readers of the schemas look for the category orders and the column tables
# (declared once in clusternb.schema, with their pandas dtypes in clusternb.columns).
STATUS_ORDER = schema.STATUS_ORDER
SEVERITY_ORDER = schema.SEVERITY_ORDER
HEALTH_ORDER = schema.HEALTH_ORDER
ALERT_STATE_ORDER = schema.ALERT_STATE_ORDER
STATUS_DTYPE = columns.STATUS_DTYPE
SEVERITY_DTYPE = columns.SEVERITY_DTYPE
HEALTH_DTYPE = columns.HEALTH_DTYPE
ALERT_STATE_DTYPE = columns.ALERT_STATE_DTYPE
TIME_DTYPE = columns.TIME_DTYPE
Column = columns.Column
WORKER_COLUMNS = columns.WORKER_COLUMNS
METRIC_COLUMNS = columns.METRIC_COLUMNS
METRIC_FIELDS = columns.METRIC_FIELDS
STATUS_COLUMNS = columns.STATUS_COLUMNS
ALERT_COLUMNS = columns.ALERT_COLUMNS
CACHE_COLUMNS = columns.CACHE_COLUMNS


class SharedState(NamedTuple):
    """Where a status comes from: Redis state (or why not) and the records readers rejected."""

    redis_state: str | None
    down_since: float | None
    error: str | None
    records_rejected: int = 0
    rejected: str = ""


def check_fields(fields: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validate a ``fields=`` argument against :data:`METRIC_FIELDS` (ArgumentError naming ``fields``)."""
    if fields is None:
        return METRIC_FIELDS
    chosen = tuple(arguments.names("fields", fields))
    unknown = [f for f in chosen if f not in METRIC_FIELDS]
    if unknown or not chosen:
        shown = unknown[:5] or list(chosen)
        raise arguments.ArgumentError("fields", f"unknown field(s) {shown!r}; allowed: {', '.join(METRIC_FIELDS)}")
    return tuple(dict.fromkeys(chosen))  # keep order, drop repeats


# -- frames -----------------------------------------------------------------------------------------------


def node_status(age: float, stale_after: float, offline_after: float) -> str:
    """online / stale / offline from the age of a node's newest sample."""
    if age > offline_after:
        return "offline"
    if age > stale_after:
        return "stale"
    return "online"


#: The record fields the derived percentages are computed from.
_PERCENT_PARTS = (
    "mem_total_bytes", "mem_used_bytes", "swap_total_bytes", "swap_used_bytes", "disk_total_bytes", "disk_used_bytes",
    "mem_limit_bytes", "mem_cgroup_used_bytes",
)  # fmt: skip
#: What the workers frame reads from each record: the catalogue's snapshot columns, the parts of the derived
#: percentages (:data:`_PERCENT_PARTS`) and the sample time.
_RAW_WORKER = tuple(dict.fromkeys([*(f.name for f in schema.WORKERS if f.snapshot), *_PERCENT_PARTS, "time"]))
_WORKER_GETTERS = tuple((name, attrgetter(name)) for name in _RAW_WORKER)
_GPU_COLUMNS = ("gpu_count", "gpu_util_percent", "gpu_mem_used_bytes", "gpu_mem_total_bytes", "gpu_temperature_c")
"""The GPU summary columns, in the order of ``vocab._gpu_summary``'s tuple."""
_TIME = attrgetter("time")
_NODE = attrgetter("node")
_GPUS = attrgetter("gpus")
_STATUS_CODE = {name: np.int8(code) for code, name in enumerate(STATUS_ORDER)}


def _label_texts(snaps: Sequence[NodeSnapshot]) -> list[str]:
    """``k=v,k=v`` (sorted by key) per snapshot; nodes share a few label sets, so each is joined once."""
    memo: dict[tuple[tuple[str, str], ...], str] = {}
    out = []
    for s in snaps:
        items = tuple(s.labels.items())
        text = memo.get(items)
        if text is None:
            text = memo[items] = ",".join(map("=".join, sorted(items)))
        out.append(text)
    return out


def _percent_of(used: np.ndarray, total: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 100.0 * used / np.where(total > 0, total, 1), 0.0)


def workers_frame(
    snapshots: Iterable[NodeSnapshot],
    now: float,
    thresholds: Any,
    departed: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per node, indexed by node name, sorted by name; see :data:`WORKER_COLUMNS`.

    ``thresholds(interval_s) -> (stale_after, offline_after)`` decides liveness from each node's own
    interval, so a node sampled every 10 s is not called stale by a reader that samples every 2 s.
    Built column-wise, each column in one C-level pass (a ``map`` over the records, then numpy or Arrow):
    10,000 nodes are one of the hot paths of cluster mode, and per-row Python is what it cannot afford.
    """
    # Columns are gathered in the records' own order and sorted by node at the end, as arrays: walking
    # 10,000 records in memory order is twice as fast as walking them sorted by name (cache misses).
    snaps = list(snapshots)
    n = len(snaps)
    nodes = list(map(_NODE, snaps))
    order = _sort_order(nodes)
    departed = departed or {}
    data: dict[str, Any] = {name: tuple(map(get, snaps)) for name, get in _WORKER_GETTERS}
    times = np.fromiter(data.pop("time"), dtype="float64", count=n)
    intervals = np.fromiter(data["interval_s"], dtype="float64", count=n)
    data.update(_percents(data.__getitem__))
    # Liveness, vectorised per distinct interval (a cluster has a handful of them), straight into category codes.
    age = now - times
    codes = np.full(n, _STATUS_CODE["online"], dtype="int8")
    for interval in np.unique(intervals):
        stale_after, offline_after = thresholds(float(interval))
        same = intervals == interval
        codes[same & (age > stale_after)] = _STATUS_CODE["stale"]
        codes[same & (age > offline_after)] = _STATUS_CODE["offline"]
    if departed:
        codes[[i for i, s in enumerate(snaps) if s.node in departed]] = _STATUS_CODE["left"]
    data["status"] = pd.Categorical.from_codes(codes, dtype=STATUS_DTYPE)
    data["last_seen"] = _to_times(times)
    data["age_s"] = np.round(age, 3)
    data.update(_gpu_columns(snaps, _GPU_COLUMNS))
    data["labels"] = _label_texts(snaps)
    index = pd.Index(dtypes.strings(nodes).take(order), name="node")
    return dtypes.typed(data, WORKER_COLUMNS, index, order)


def _percents(raw: Callable[[str], Sequence[Any]]) -> dict[str, np.ndarray]:
    """The three derived percentages, vectorised (same definitions as the NodeSnapshot properties, which cost
    a Python call per record and per percentage); ``raw(field)`` gives a field's values, one per record."""
    f = {k: dtypes.floats(raw(k)) for k in _PERCENT_PARTS}
    limit = f["mem_limit_bytes"]
    return {
        "mem_used_percent": np.where(
            limit > 0,  # False for NaN (no limit)
            _percent_of(np.nan_to_num(f["mem_cgroup_used_bytes"]), np.nan_to_num(limit)),
            _percent_of(f["mem_used_bytes"], f["mem_total_bytes"]),
        ),
        "swap_used_percent": _percent_of(f["swap_used_bytes"], f["swap_total_bytes"]),
        "disk_used_percent": _percent_of(f["disk_used_bytes"], f["disk_total_bytes"]),
    }


def _gpu_columns(snaps: Sequence[NodeSnapshot], names: Sequence[str]) -> dict[str, Any]:
    """The GPU summary columns ``names`` (of :data:`_GPU_COLUMNS`), one value per record; constant arrays
    when no record has a GPU, as in most clusters."""
    n = len(snaps)
    if not names:
        return {}
    if any(map(_GPUS, snaps)):
        summaries = list(map(_gpu_summary, snaps))
        return {name: list(map(itemgetter(_GPU_COLUMNS.index(name)), summaries)) for name in names}
    none = {"gpu_count": np.zeros(n, "int64"), "gpu_util_percent": np.full(n, math.nan),
            "gpu_mem_used_bytes": dtypes.missing_ints(n), "gpu_mem_total_bytes": dtypes.missing_ints(n),
            "gpu_temperature_c": np.full(n, math.nan)}  # fmt: skip
    return {name: none[name] for name in names}


def _sort_order(keys: list[Any]) -> np.ndarray:
    """The positions that put ``keys`` in (stable) sorted order, for :func:`_typed`'s ``order``."""
    return np.fromiter(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.intp, count=len(keys))


def metrics_frame(snapshots: Iterable[NodeSnapshot], fields: Sequence[str]) -> pd.DataFrame:
    """Tidy time series: one row per node per sample, columns ``time``, ``node`` then ``fields``.

    Gathered like :func:`workers_frame`: each column in one pass in the records' own order, rows sorted by
    (time, node) at the end.
    """
    snaps = list(snapshots)
    n = len(snaps)
    times = np.fromiter(map(_TIME, snaps), dtype="float64", count=n)
    nodes = list(map(_NODE, snaps))
    order = _sort_order(list(zip(times.tolist(), nodes, strict=True)))
    data: dict[str, Any] = {"time": _to_times(times), "node": nodes}
    raw = functools.cache(lambda name: tuple(map(attrgetter(name), snaps)))
    if any(name in _DERIVED for name in fields):
        data.update(_percents(raw))
    data.update(_gpu_columns(snaps, [name for name in fields if name in _GPU_COLUMNS]))
    for name in fields:
        if name not in data:
            data[name] = raw(name)
    chosen = [c for c in METRIC_COLUMNS if c.name in fields]
    chosen.sort(key=lambda c: fields.index(c.name))
    return dtypes.typed(data, columns.METRIC_HEAD_COLUMNS + tuple(chosen), pd.RangeIndex(n), order)


_DERIVED = ("mem_used_percent", "swap_used_percent", "disk_used_percent")
_SPREAD = {c.name: c for c in columns.METRIC_SPREAD_COLUMNS}


def rollup_frame(blocks: Sequence[Block], fields: Sequence[str], resolution: str) -> pd.DataFrame:
    """metrics() beyond the raw window: one row per node per minute or hour (``resolution``), ``time`` the row's
    start. Each chosen field holds its mean over the row, ``<field>_min``/``<field>_max`` follow the fields, then
    ``samples`` (samples folded into the row). Rows sorted by (time, node); ``attrs["resolution"]`` says which."""
    blocks = sorted(blocks, key=lambda b: (b.node, b.start))
    lengths = np.fromiter(map(len, blocks), dtype=np.intp, count=len(blocks))
    of_block = np.repeat(np.arange(len(blocks)), lengths)  # each row's block: the blocks sorted by node first
    n = len(of_block)
    times = np.concatenate([b.start + np.asarray(b.slots, "float64") * b.tier.step for b in blocks] or [np.zeros(0)])
    nodes = dtypes.strings([b.node for b in blocks]).take(of_block)  # one string per block, not per row
    counts = np.concatenate([np.asarray(b.counts, "int64") for b in blocks] or [np.zeros(0, "int64")])
    parts = [np.frombuffer(b.values, "float32" if b.values.typecode == "f" else "float64") for b in blocks]
    width = 3 * len(METRIC_FIELDS)  # a block's columns: (field, min/mean/max), fields as metrics() lists them
    shaped = [p.reshape(width, len(b)) for p, b in zip(parts, blocks, strict=True)]
    values = np.concatenate(shaped, axis=1) if shaped else np.zeros((width, 0))
    order = np.lexsort((of_block, times))
    data: dict[str, Any] = {"time": _to_times(times), "node": nodes, "samples": counts}
    chosen = [c for c in METRIC_COLUMNS if c.name in fields]
    chosen.sort(key=lambda c: fields.index(c.name))
    spread = [_SPREAD[f"{c.name}_{stat}"] for c in chosen for stat in ("min", "max")]
    for col in chosen:
        at = METRIC_FIELDS.index(col.name)
        for name, stat in ((col.name, 1), (f"{col.name}_min", 0), (f"{col.name}_max", 2)):
            column = values[3 * at + stat].astype("float64")
            data[name] = _ints(column) if col.dtype == "Int64" else column
    head = columns.METRIC_HEAD_COLUMNS
    frame = dtypes.typed(data, (*head, *chosen, *spread, columns.METRIC_SAMPLES_COLUMN), pd.RangeIndex(n), order)
    frame.attrs["resolution"] = resolution
    return frame


def _ints(values: np.ndarray) -> pd.arrays.IntegerArray:
    """Whole numbers of a float column (NaN: missing), for a column of dtype Int64."""
    missing = np.isnan(values)
    return pd.arrays.IntegerArray(np.round(np.where(missing, 0.0, values)).astype("int64"), missing)


class Beyond(NamedTuple):
    """What a cluster summary reports beyond the nodes and alerts (each part optional).

    ``dask``: ``{"workers": n, "tasks": {state: count}, "tasks_per_s": x}`` when a scheduler is watched.
    ``services``: probe results as mappings with ``name``, ``up``, ``latency_ms``. ``shared``: where the
    state came from (Redis, or this process's last view) and what readers rejected.
    """

    dask: Mapping[str, Any] | None = None
    services: Sequence[Mapping[str, Any]] = ()
    shared: SharedState | None = None


def status_frame(workers: pd.DataFrame, now: float, alerts: pd.DataFrame, beyond: Beyond | None = None) -> pd.DataFrame:
    """The one-row cluster summary (see :data:`STATUS_COLUMNS`), computed from a workers frame."""
    dask, services, shared = beyond or Beyond()
    online = workers[workers["status"] == "online"]
    counts = workers["status"].value_counts()
    cpu_total = _exact_sum(online["cpu_count"])
    cpu_weighted = (online["cpu_percent"] * online["cpu_count"].astype("float64")).sum()
    cpu_percent = float(cpu_weighted / cpu_total) if cpu_total else 0.0
    mem_total = _exact_sum(online["mem_total_bytes"])
    mem_used = _exact_sum(online["mem_used_bytes"])
    shared = shared or SharedState(None, None, None)
    active = alerts[alerts["state"] == "firing"] if len(alerts) else alerts
    critical = int((active["severity"] == "critical").sum()) if len(active) else 0
    newest = workers["last_seen"].max() if len(workers) else None
    row = {
        "as_of": _to_times(np.array([now])),
        "newest_sample": [newest],
        "data_age_s": [round(now - newest.timestamp(), 3) if newest is not None else math.nan],
        "health": [health_from(len(active), critical)],
        "nodes_total": [len(workers)],
        **{f"nodes_{s}": [int(counts.get(s, 0))] for s in STATUS_ORDER},
        "cpu_count": [cpu_total],
        "cpu_percent": [round(cpu_percent, 2)],
        "mem_total_bytes": [mem_total],
        "mem_used_bytes": [mem_used],
        "mem_used_percent": [round(100.0 * mem_used / mem_total, 2) if mem_total else 0.0],
        "gpu_count": [_exact_sum(online["gpu_count"])],
        "alerts_firing": [len(active)],
        "alerts_critical": [critical],
        "dask_workers": [dask["workers"] if dask else None],
        "tasks_per_s": [dask["tasks_per_s"] if dask else math.nan],
        "services_total": [len(services)],
        "services_down": [sum(1 for p in services if not p["up"])],
        "services": [", ".join(f"{p['name']}={'up' if p['up'] else 'down'} {p['latency_ms']:.1f}ms" for p in services)],
    }
    for state in ("processing", "waiting", "memory", "erred"):
        row[f"tasks_{state}"] = [dask["tasks"].get(state) if dask else None]
    row["redis_state"] = [shared.redis_state]
    since = shared.down_since
    row["redis_down_since"] = [None if since is None else pd.Timestamp(since, unit="s", tz="UTC")]
    row["redis_error"] = [shared.error]
    row["records_rejected"] = [shared.records_rejected]
    row["rejected"] = [shared.rejected]
    return dtypes.typed(row, STATUS_COLUMNS, pd.RangeIndex(1))


_INT64_MAX = 2**63 - 1


def _exact_sum(column: pd.Series) -> int:
    """A column's sum as an exact int, capped at int64's maximum: numpy's int64 sum wraps silently past it."""
    if float(column.to_numpy(dtype="float64", na_value=0.0).sum()) < 2**62:  # no wrap possible: numpy's sum
        return int(column.sum())
    return min(sum(int(v) for v in column.dropna()), _INT64_MAX)


def health_from(firing: int, critical: int) -> str:
    """Cluster health from the number of firing alerts and how many of them are critical."""
    if critical:
        return "critical"
    return "degraded" if firing else "healthy"


def empty_alerts_frame() -> pd.DataFrame:
    return dtypes.typed({}, ALERT_COLUMNS, pd.RangeIndex(0))


def _to_times(epoch_seconds: np.ndarray) -> pd.DatetimeIndex:
    # Microsecond precision: float seconds carry no more, and it keeps round trips exact.
    micros = np.round(epoch_seconds * 1e6).astype("int64")
    return pd.to_datetime(micros, unit="us", utc=True).as_unit("ns")


def cache_status_frame(status: Mapping[str, Any]) -> pd.DataFrame:
    """One row per namespace plus an ``(all)`` row of totals; connection state repeated on every row."""
    spaces = dict(status["namespaces"])
    total: dict[str, Any] = {k: sum(ns[k] for ns in spaces.values()) for k in ("hits", "misses", "loads", "errors")}
    total["errors"] += status.get("unattributed_errors", 0)
    total["entries"] = sum(ns["entries"] for ns in spaces.values())
    total["bytes"] = sum(ns["bytes"] for ns in spaces.values())
    looked = total["hits"] + total["misses"]
    total["hit_rate"] = total["hits"] / looked if looked else 0.0
    total["mean_get_us"] = (
        sum(ns["mean_get_us"] * (ns["hits"] + ns["misses"]) for ns in spaces.values()) / looked if looked else 0.0
    )
    total["p99_get_us"] = max((ns["p99_get_us"] for ns in spaces.values()), default=0.0)
    total["ttl_s"] = math.nan
    rows = {"(all)": total, **spaces}
    shared = {k: status[k] for k in ("backend", "configured", "redis_state", "near_cache", "fallbacks", "uptime_s")}
    data: dict[str, list[Any]] = {c.name: [] for c in CACHE_COLUMNS}
    for row in rows.values():
        merged = {**row, **shared}
        for col in CACHE_COLUMNS:
            if col.name in ("last_failure", "last_recovery"):
                when = status[col.name]
                data[col.name].append(None if when is None else pd.Timestamp(when, unit="s", tz="UTC"))
            else:
                data[col.name].append(merged[col.name])
    index = pd.Index(list(rows), dtype="string", name="namespace")
    return dtypes.typed(data, CACHE_COLUMNS, index)
