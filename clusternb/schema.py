"""The field catalogue: every column the queries return, declared once, free of pandas.

Each :class:`Field` gives a column's name, dtype, unit, one-line description and valid bounds, and whether it is
a time series (``metrics(fields=)``) or a Prometheus series. Everything else follows from these tuples: the
frame column tables and dtypes (:mod:`clusternb.columns`), ``vocab.METRIC_NAMES``, the Prometheus names and HELP
texts (:mod:`clusternb.server.metrics`), the README's tables and :func:`clusternb.fields`.

A column that carries a snapshot field is not declared here: it is declared with the field, in the model
(``Annotated[..., column(...)]``, see :mod:`clusternb.declare`), and read back by :func:`snapshot_columns`
with its dtype (from the type), unit (from the type alias), description and bounds. Here are the columns each
query computes (sums, counts, ages, states); their bounds, where they have some, are read from the model too
(:func:`bounds`).

This module imports no pandas, so the agent and the CLI parser (through :mod:`clusternb.vocab`) stay small.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import msgspec.inspect as mi

from clusternb import declare as d
from clusternb.kernel_usage.record import KernelStat
from clusternb.model import GPUStat, NodeSnapshot, Percent

STATUS_ORDER = ["online", "stale", "offline", "left"]
SEVERITY_ORDER = ["info", "warning", "critical"]
HEALTH_ORDER = ["healthy", "degraded", "critical"]
ALERT_STATE_ORDER = ["pending", "firing", "resolved"]

#: dtype of every time column: tz-aware UTC (a pandas dtype name, so this module needs no pandas).
TIME: Final = "datetime64[ns, UTC]"
#: dtype of an ordered categorical; its categories are the field's ``categories``.
CATEGORY: Final = "category"

# Units and faces are the words of a declaration (clusternb.declare); re-exported for the faces that read them.
PERCENT, BYTES, RATE, SECONDS, MICROSECONDS, CELSIUS, CORES, RATIO = (
    d.PERCENT, d.BYTES, d.RATE, d.SECONDS, d.MICROSECONDS, d.CELSIUS, d.CORES, d.RATIO,
)  # fmt: skip
CLI, PANEL, DASHBOARD, TABLES = d.CLI, d.PANEL, d.DASHBOARD, d.TABLES


@dataclass(frozen=True, slots=True)
class Field:
    """One column of a query's frame.

    ``min``/``max``: the bounds a value is validated against where it enters (inclusive; an exclusive bound
    such as ``interval_s > 0`` shows its limit); None where the query computes the value.
    ``snapshot``: the column carries the snapshot field of the same name as it is (the frame builders read it
    straight from the records). ``metric``: a per-sample number ``metrics(fields=)`` can return.
    ``prometheus``: the base name of its Prometheus series (prefixed per query by the exporter), "" when not
    exported; ``counter``: a Prometheus counter rather than a gauge. ``table``: the faces whose workers table
    shows the column (:data:`TABLES`), under ``heading``; each face formats it by its unit and dtype
    (:mod:`clusternb.tables`).
    """

    name: str
    dtype: str
    unit: str
    description: str
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()
    snapshot: bool = False
    metric: bool = False
    prometheus: str = ""
    counter: bool = False
    heading: str = ""
    table: frozenset[str] = frozenset()

    @property
    def help(self) -> str:
        """The one-line text shown wherever the column is explained without its table (Prometheus HELP)."""
        return f"{self.description} ({self.unit})" if self.unit else self.description


@functools.cache
def _record_types(record: type[msgspec.Struct]) -> dict[str, Any]:
    return {f.name: f.type for f in mi.type_info(record).fields}  # type: ignore[attr-defined]


def bounds(tp: Any, field: str | None = None) -> dict[str, Any]:
    """``{"min": ..., "max": ...}`` of an annotated type, or of the field ``field`` of a record class, as
    declared by its ``msgspec.Meta`` (None where it declares none)."""
    info = _record_types(tp)[field] if field is not None else mi.type_info(tp)
    if isinstance(info, mi.UnionType):  # Optional: the bounds of the value when there is one
        info = next(t for t in info.types if not isinstance(t, mi.NoneType))
    while isinstance(info, mi.Metadata):
        info = info.type
    return _limits(info)


def _limits(info: Any) -> dict[str, Any]:
    """``{"min": ..., "max": ...}`` of a number's type info (None for other types)."""
    if isinstance(info, mi.IntType | mi.FloatType):
        return {"min": info.gt if info.ge is None else info.ge, "max": info.lt if info.le is None else info.le}
    return {"min": None, "max": None}


def length_bounds(record: type[msgspec.Struct], field: str) -> dict[str, Any]:
    """The bounds of the number of items of the collection field ``field`` of ``record``."""
    info = _record_types(record)[field]
    return {"min": info.min_length or 0, "max": info.max_length}


#: dtype of a snapshot column by the type of its values (ints nullable: a node may not report one).
_DTYPES: Final[dict[type, str]] = {mi.IntType: "Int64", mi.FloatType: "float64", mi.StrType: "string"}


def _declared(name: str, info: Any) -> Field | None:
    """The column a model field declares (:func:`clusternb.declare.column`), or None if it declares none."""
    extra: dict[str, Any] = {}
    description = ""
    if isinstance(info, mi.UnionType):  # Optional: the declaration is on the value's type
        info = next(t for t in info.types if not isinstance(t, mi.NoneType))
    while isinstance(info, mi.Metadata):
        extra = {**(info.extra or {}), **extra}
        description = description or (info.extra_json_schema or {}).get("description", "")
        info = info.type
    shown = extra.get(d.COLUMN)
    if not isinstance(shown, d.Shown):
        return None
    return Field(
        name, shown.dtype or _DTYPES[type(info)], shown.unit or extra.get(d.UNIT, ""), description,
        **_limits(info), snapshot=True, metric=shown.metric, prometheus=shown.prometheus, counter=shown.counter,
        heading=shown.heading, table=frozenset(shown.table),
    )  # fmt: skip


def snapshot_columns(record: type[msgspec.Struct] = NodeSnapshot) -> tuple[Field, ...]:
    """The columns the fields of ``record`` declare, in the model's order: each carries its field as it is."""
    declared = (_declared(name, info) for name, info in _record_types(record).items())
    return tuple(f for f in declared if f is not None)


def _placed(columns: tuple[Field, ...], computed: tuple[tuple[str | None, Field], ...]) -> tuple[Field, ...]:
    """``columns`` with each ``(after, field)`` of ``computed`` inserted after the column named ``after`` (None:
    first), in turn: where a computed column reads best, beside the fields it is computed from."""
    out = list(columns)
    for after, f in computed:
        out.insert(0 if after is None else [c.name for c in out].index(after) + 1, f)
    return tuple(out)


def _category(name: str, order: list[str], description: str, **kw: Any) -> Field:
    return Field(name, CATEGORY, "", description, categories=tuple(order), **kw)


_PCT = bounds(Percent)
#: The memory of every GPU of a node summed: each GPU's bound times the most GPUs a record may list.
_GPU_MEM = {"min": 0, "max": bounds(GPUStat, "mem_used_bytes")["max"] * length_bounds(NodeSnapshot, "gpus")["max"]}

#: ``workers()``: one row per node, index ``node``. The columns that carry a snapshot field are declared with
#: the field in the model (:func:`snapshot_columns`); here are those a query computes, each placed after a column.
WORKERS: Final = _placed(snapshot_columns(), (
    (None, _category("status", STATUS_ORDER, "online / stale / offline from last_seen, or left after a clean exit",
                     prometheus="up", heading="status", table=TABLES)),
    ("status", Field("last_seen", TIME, "", "time of the node's newest sample (UTC)",
                     heading="last seen", table=frozenset({PANEL, DASHBOARD}))),
    ("last_seen", Field("age_s", "float64", SECONDS, "time between last_seen and the query's as-of time",
                        prometheus="sample_age_seconds", heading="age", table=frozenset({CLI}))),
    ("mem_available_bytes", Field("mem_used_percent", "float64", PERCENT,
                                  "memory in use, of the container limit when one applies", **_PCT, metric=True,
                                  prometheus="memory_used_percent", heading="memory %", table=TABLES)),
    ("swap_used_bytes", Field("swap_used_percent", "float64", PERCENT, "swap in use", **_PCT, metric=True)),
    ("disk_used_bytes", Field("disk_used_percent", "float64", PERCENT, "filesystem used", **_PCT, metric=True,
                              prometheus="disk_used_percent", heading="disk %", table=frozenset({CLI, DASHBOARD}))),
    ("net_tx_bps", Field("gpu_count", "Int64", "", "GPUs NVML reports", **length_bounds(NodeSnapshot, "gpus"),
                         heading="GPUs", table=frozenset({CLI, DASHBOARD}))),
    ("gpu_count", Field("gpu_util_percent", "float64", PERCENT, "mean GPU utilisation (NaN: no GPU)",
                        **bounds(GPUStat, "util_percent"), metric=True, prometheus="gpu_util_percent",
                        heading="GPU %", table=frozenset({PANEL}))),
    ("gpu_util_percent", Field("gpu_mem_used_bytes", "Int64", BYTES, "GPU memory in use, all GPUs", **_GPU_MEM,
                               metric=True)),
    ("gpu_mem_used_bytes", Field("gpu_mem_total_bytes", "Int64", BYTES, "GPU memory, all GPUs", **_GPU_MEM)),
    ("gpu_mem_total_bytes", Field("gpu_temperature_c", "float64", CELSIUS, "hottest GPU",
                                  **bounds(GPUStat, "temperature_c"), metric=True)),
    ("interval_s", Field("labels", "string", "", "the node's labels as sorted key=value pairs joined by commas")),
))  # fmt: skip

#: ``metrics()``: the two columns every row has, before the chosen fields.
METRIC_HEAD: Final = (
    Field("time", TIME, "", "sample time (UTC)"),
    Field("node", "string", "", "node name", **bounds(NodeSnapshot, "node"), snapshot=True),
)
#: The per-sample numbers ``metrics(fields=)`` picks among, in column order: the workers' time series.
METRICS: Final = tuple(f for f in WORKERS if f.metric)
METRIC_NAMES: Final = tuple(f.name for f in METRICS)


def _spread(f: Field, stat: str) -> Field:
    word = "lowest" if stat == "min" else "highest"
    return Field(f"{f.name}_{stat}", f.dtype, f.unit, f"{word} {f.name} within the row", f.min, f.max)


#: ``metrics()`` beyond the raw window answers with a row per node per minute or per hour (see
#: :mod:`clusternb.state.rollup`): each chosen field then holds its mean over the row, and these columns follow
#: the fields: ``<field>_min`` and ``<field>_max`` of each chosen field, then ``samples``.
METRIC_SPREAD: Final = tuple(_spread(f, stat) for f in METRICS for stat in ("min", "max"))
METRIC_SAMPLES: Final = Field("samples", "int64", "", "samples folded into the row (rolled-up rows only)", 1)

#: ``cluster_status()``: one row.
STATUS: Final = (
    Field("as_of", TIME, "", "when the summary was computed (UTC)"),
    Field("newest_sample", TIME, "", "time of the newest sample of any node"),
    Field("data_age_s", "float64", SECONDS, "time between newest_sample and as_of"),
    _category("health", HEALTH_ORDER, "healthy / degraded / critical, from the active alerts", prometheus="health"),
    Field("nodes_total", "int64", "", "nodes known (left nodes included)", prometheus="nodes_total"),
    Field("nodes_online", "int64", "", "nodes with a recent sample", prometheus="nodes_online"),
    Field("nodes_stale", "int64", "", "nodes late by more than stale_after", prometheus="nodes_stale"),
    Field("nodes_offline", "int64", "", "nodes silent for more than offline_after", prometheus="nodes_offline"),
    Field("nodes_left", "int64", "", "nodes whose agent stopped cleanly"),
    Field("cpu_count", "int64", "", "logical CPUs of the online nodes"),
    Field("cpu_percent", "float64", PERCENT, "CPU busy across online nodes, weighted by their CPU counts", **_PCT),
    Field("mem_total_bytes", "int64", BYTES, "memory of the online nodes"),
    Field("mem_used_bytes", "int64", BYTES, "memory in use on the online nodes"),
    Field("mem_used_percent", "float64", PERCENT, "memory in use, of the online nodes' total", **_PCT),
    Field("gpu_count", "int64", "", "GPUs of the online nodes"),
    Field("alerts_firing", "int64", "", "alerts firing now", prometheus="alerts_firing"),
    Field("alerts_critical", "int64", "", "critical alerts firing now", prometheus="alerts_critical"),
    Field("dask_workers", "Int64", "", "workers of the Dask scheduler (<NA>: no Dask configured)"),
    Field("tasks_processing", "Int64", "", "Dask tasks running or assigned"),
    Field("tasks_waiting", "Int64", "", "Dask tasks waiting on dependencies"),
    Field("tasks_memory", "Int64", "", "Dask results held in memory"),
    Field("tasks_erred", "Int64", "", "Dask tasks that failed"),
    Field("tasks_per_s", "float64", "", "Dask tasks finished per second over the last interval (approximate)"),
    Field("services_total", "int64", "", "services probed"),
    Field("services_down", "int64", "", "services not answering"),
    Field("services", "string", "", "each service as name=up|down latency, e.g. 'web=up 3.1ms, db=down'"),
    Field("redis_state", "string", "", "connected / unreachable / never reached (<NA>: embedded mode, no Redis)"),
    Field("redis_down_since", TIME, "", "when Redis stopped answering (NaT while connected)"),
    Field("redis_error", "string", "",
          "why Redis is not answering; meanwhile answers come from this process's last view"),
    Field("records_rejected", "int64", "", "records read from Redis that failed validation and were skipped"),
    Field("rejected", "string", "", "the most frequent rejections: kind, node, reason and count"),
)  # fmt: skip

#: ``alerts()``: one row per alert, newest first.
ALERTS: Final = (
    Field("alert_id", "string", "", "stable id: rule and node"),
    Field("rule", "string", "", "rule name"),
    Field("node", "string", "", "node the alert is about"),
    _category("severity", SEVERITY_ORDER, "info / warning / critical"),
    _category("state", ALERT_STATE_ORDER, "pending / firing / resolved"),
    Field("metric", "string", "", "snapshot field the rule watches"),
    Field("value", "float64", "", "value that triggered (or last held) the alert"),
    Field("threshold", "float64", "", "the rule's threshold"),
    Field("message", "string", "", "rendered message"),
    Field("started_at", TIME, "", "when the condition first held"),
    Field("fired_at", TIME, "", "when it became firing (NaT while pending)"),
    Field("ended_at", TIME, "", "when it resolved (NaT while active)"),
    Field("acknowledged", "bool", "", "acknowledged by a person"),
)

#: ``cache_status()``: one row per namespace plus ``(all)``, index ``namespace``.
CACHE: Final = (
    Field("backend", "string", "", "backend serving calls now: redis or memory"),
    Field("configured", "string", "", "backend asked for: redis (with memory fallback) or memory"),
    Field("redis_state", "string", "", "connected / unreachable / never reached (<NA> without Redis)",
          prometheus="redis_up"),
    Field("near_cache", "string", "", "this process's near cache of Redis entries: on, off, starting, reconnecting, "
          "cluster (not used on a Redis Cluster) or refused: why (<NA> without Redis)"),
    Field("hits", "int64", "", "lookups that found an entry (a cached None or empty frame counts)",
          prometheus="hits", counter=True),
    Field("misses", "int64", "", "lookups that found none", prometheus="misses", counter=True),
    Field("hit_rate", "float64", RATIO, "hits / (hits + misses)"),
    Field("loads", "int64", "", "times the cached function actually ran", prometheus="loads", counter=True),
    Field("errors", "int64", "", "undecodable entries, refused writes, uncacheable values", prometheus="errors",
          counter=True),
    Field("entries", "int64", "", "entries stored now"),
    Field("bytes", "int64", BYTES, "bytes stored now"),
    Field("mean_get_us", "float64", MICROSECONDS, "mean time of a lookup"),
    Field("p99_get_us", "float64", MICROSECONDS, "99th percentile time of a lookup"),
    Field("ttl_s", "float64", SECONDS, "time-to-live of the namespace"),
    Field("fallbacks", "int64", "", "times Redis failed and memory took over", prometheus="fallbacks",
          counter=True),
    Field("last_failure", TIME, "", "when Redis last failed"),
    Field("last_recovery", TIME, "", "when Redis last came back"),
    Field("uptime_s", "float64", SECONDS, "time since this process's cache started"),
)  # fmt: skip

#: ``kernels()``: one row per kernel, index ``kernel_id``. The columns that carry a field of the kernel record
#: are declared with it (:mod:`clusternb.kernel_usage.record`); here are those the query adds.
KERNELS: Final = _placed(snapshot_columns(KernelStat), (
    (None, Field("node", "string", "", "node the kernel runs on", heading="node", table=TABLES)),
    ("node", Field("server", "string", "", "URL of the Jupyter server that runs the kernel (no token)")),
    ("user", Field("own", "bool", "", "owned by the Unix user running the query (others' paths are hidden)")),
    ("pss_bytes", Field("mem_share_percent", "float64", PERCENT,
                        "memory (PSS, else RSS) as a percent of the node's container limit, else of its memory",
                        min=0.0, heading="mem % of node", table=TABLES, prometheus="memory_share_percent")),
    ("gpu_mem_used_bytes", Field("gpu_devices", "string", "", "GPUs the kernel uses, by index, e.g. '0,1'")),
    ("gpu_devices", Field("sampled_at", TIME, "", "when the kernel was measured (UTC)")),
    ("sampled_at", Field("age_s", "float64", SECONDS, "time between sampled_at and the query's as-of time")),
))  # fmt: skip

#: Every query's columns, by the name of the query function.
QUERIES: Final = {
    "workers": WORKERS,
    "metrics": METRIC_HEAD + METRICS,
    "cluster_status": STATUS,
    "alerts": ALERTS,
    "kernels": KERNELS,
    "cache_status": CACHE,
}


#: Columns a query returns only in some answers (metrics() beyond the raw window), after those of :data:`QUERIES`.
SOMETIMES: Final = {"metrics": (*METRIC_SPREAD, METRIC_SAMPLES)}


def field(query: str, name: str) -> Field:
    """The declaration of column ``name`` of ``query`` (a key of :data:`QUERIES`); KeyError if none."""
    for f in QUERIES[query] + SOMETIMES.get(query, ()):
        if f.name == name:
            return f
    raise KeyError(f"{query}() has no column {name!r}")
