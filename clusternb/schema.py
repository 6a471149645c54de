"""The field catalogue: every column the queries return, declared once, free of pandas.

Each :class:`Field` gives a column's name, dtype, unit, one-line description and valid bounds, and whether it is
a time series (``metrics(fields=)``) or a Prometheus series. Everything else follows from these tuples: the
frame column tables and dtypes (:mod:`clusternb.columns`), ``vocab.METRIC_NAMES``, the Prometheus names and HELP
texts (:mod:`clusternb.server.metrics`), the README's tables and :func:`clusternb.fields`.

Bounds are not restated here: a column that carries a snapshot field takes them from the model's
``Annotated[..., msgspec.Meta(...)]`` (:func:`bounds`), where records are validated. Columns computed by a
query (sums, counts, ages) have none.

This module imports no pandas, so the agent and the CLI parser (through :mod:`clusternb.vocab`) stay small.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import msgspec.inspect as mi

from clusternb.model import GPUStat, NodeSnapshot, Percent

STATUS_ORDER = ["online", "stale", "offline", "left"]
SEVERITY_ORDER = ["info", "warning", "critical"]
HEALTH_ORDER = ["healthy", "degraded", "critical"]
ALERT_STATE_ORDER = ["pending", "firing", "resolved"]

#: dtype of every time column: tz-aware UTC (a pandas dtype name, so this module needs no pandas).
TIME: Final = "datetime64[ns, UTC]"
#: dtype of an ordered categorical; its categories are the field's ``categories``.
CATEGORY: Final = "category"

# Units, one convention (IEC bytes, SI rates: see clusternb.units); "" for counts and plain numbers.
PERCENT: Final = "percent"
BYTES: Final = "bytes"
RATE: Final = "bytes/s"
SECONDS: Final = "seconds"
MICROSECONDS: Final = "microseconds"
CELSIUS: Final = "°C"
CORES: Final = "cores"
RATIO: Final = "ratio"

# The faces that show a workers table (``Field.table``): each shows the fields that name it, in catalogue order.
CLI: Final = "cli"
PANEL: Final = "panel"
DASHBOARD: Final = "dashboard"
#: Every workers table: what a new field of general interest names.
TABLES: Final = frozenset({CLI, PANEL, DASHBOARD})


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
    while isinstance(info, mi.Metadata):
        info = info.type
    if isinstance(info, mi.UnionType):  # Optional: the bounds of the value when there is one
        info = next(t for t in info.types if not isinstance(t, mi.NoneType))
    if isinstance(info, mi.IntType | mi.FloatType):
        return {"min": info.gt if info.ge is None else info.ge, "max": info.lt if info.le is None else info.le}
    return {"min": None, "max": None}


def length_bounds(record: type[msgspec.Struct], field: str) -> dict[str, Any]:
    """The bounds of the number of items of the collection field ``field`` of ``record``."""
    info = _record_types(record)[field]
    return {"min": info.min_length or 0, "max": info.max_length}


def _snap(name: str, dtype: str, unit: str, description: str, **kw: Any) -> Field:
    """A column that carries the snapshot field of the same name, with the model's bounds."""
    return Field(name, dtype, unit, description, **bounds(NodeSnapshot, name), snapshot=True, **kw)


def _category(name: str, order: list[str], description: str, **kw: Any) -> Field:
    return Field(name, CATEGORY, "", description, categories=tuple(order), **kw)


_PCT = bounds(Percent)

#: ``workers()``: one row per node, index ``node``.
WORKERS: Final = (
    _category("status", STATUS_ORDER, "online / stale / offline from last_seen, or left after a clean exit",
              prometheus="up", heading="status", table=TABLES),
    Field("last_seen", TIME, "", "time of the node's newest sample (UTC)",
          heading="last seen", table=frozenset({PANEL, DASHBOARD})),
    Field("age_s", "float64", SECONDS, "time between last_seen and the query's as-of time",
          prometheus="sample_age_seconds", heading="age", table=frozenset({CLI})),
    _snap("host", "string", "", "host name"),
    _snap("ip", "string", "", "primary IPv4 address"),
    _snap("source", "string", "", "local, agent or dask"),
    _snap("cpu_count", "Int64", "", "logical CPUs of the host", heading="cores", table=frozenset({CLI, PANEL})),
    _snap("cpu_limit", "float64", CORES, "CPU cores granted by a container quota (NaN: none)"),
    _snap("threads", "Int64", "", "worker threads (Dask workers)"),
    _snap("cpu_percent", "float64", PERCENT, "CPU busy over the last interval, 0-100 across all CPUs",
          metric=True, prometheus="cpu_percent", heading="CPU %", table=TABLES),
    _snap("load_1", "float64", "", "1-minute load average", metric=True, prometheus="load1",
          heading="load 1m", table=TABLES),
    _snap("load_5", "float64", "", "5-minute load average", metric=True),
    _snap("load_15", "float64", "", "15-minute load average", metric=True),
    _snap("mem_total_bytes", "Int64", BYTES, "host memory (MemTotal)", prometheus="memory_total_bytes",
          heading="memory", table=frozenset({CLI})),
    _snap("mem_used_bytes", "Int64", BYTES, "host memory in use (total - available)", metric=True,
          prometheus="memory_used_bytes", heading="mem used", table=TABLES),
    _snap("mem_available_bytes", "Int64", BYTES, "host memory available to new work", metric=True),
    Field("mem_used_percent", "float64", PERCENT, "memory in use, of the container limit when one applies",
          **_PCT, metric=True, prometheus="memory_used_percent", heading="memory %", table=TABLES),
    _snap("mem_limit_bytes", "Int64", BYTES, "container memory limit (<NA>: none)"),
    _snap("swap_total_bytes", "Int64", BYTES, "swap size"),
    _snap("swap_used_bytes", "Int64", BYTES, "swap in use", metric=True),
    Field("swap_used_percent", "float64", PERCENT, "swap in use", **_PCT, metric=True),
    _snap("disk_path", "string", "", "path whose filesystem is reported"),
    _snap("disk_total_bytes", "Int64", BYTES, "filesystem size"),
    _snap("disk_used_bytes", "Int64", BYTES, "filesystem space used", metric=True),
    Field("disk_used_percent", "float64", PERCENT, "filesystem used", **_PCT, metric=True,
          prometheus="disk_used_percent", heading="disk %", table=frozenset({CLI, DASHBOARD})),
    _snap("disk_read_bps", "float64", RATE, "disk reads", metric=True),
    _snap("disk_write_bps", "float64", RATE, "disk writes", metric=True),
    _snap("net_rx_bps", "float64", RATE, "network received (loopback excluded)", metric=True,
          prometheus="network_receive_bytes_per_second", heading="net rx", table=TABLES),
    _snap("net_tx_bps", "float64", RATE, "network sent (loopback excluded)", metric=True,
          prometheus="network_transmit_bytes_per_second", heading="net tx", table=TABLES),
    Field("gpu_count", "Int64", "", "GPUs NVML reports", **length_bounds(NodeSnapshot, "gpus"),
          heading="GPUs", table=frozenset({CLI, DASHBOARD})),
    Field("gpu_util_percent", "float64", PERCENT, "mean GPU utilisation (NaN: no GPU)",
          **bounds(GPUStat, "util_percent"), metric=True, prometheus="gpu_util_percent",
          heading="GPU %", table=frozenset({PANEL})),
    Field("gpu_mem_used_bytes", "Int64", BYTES, "GPU memory in use, all GPUs", metric=True),
    Field("gpu_mem_total_bytes", "Int64", BYTES, "GPU memory, all GPUs"),
    Field("gpu_temperature_c", "float64", CELSIUS, "hottest GPU", **bounds(GPUStat, "temperature_c"),
          metric=True),
    _snap("uptime_s", "float64", SECONDS, "time since the host booted"),
    _snap("interval_s", "float64", SECONDS, "time between this node's samples"),
    Field("labels", "string", "", "the node's labels as sorted key=value pairs joined by commas"),
)  # fmt: skip

#: ``metrics()``: the two columns every row has, before the chosen fields.
METRIC_HEAD: Final = (
    Field("time", TIME, "", "sample time (UTC)"),
    _snap("node", "string", "", "node name"),
)
#: The per-sample numbers ``metrics(fields=)`` picks among, in column order: the workers' time series.
METRICS: Final = tuple(f for f in WORKERS if f.metric)
METRIC_NAMES: Final = tuple(f.name for f in METRICS)

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

#: Every query's columns, by the name of the query function.
QUERIES: Final = {
    "workers": WORKERS,
    "metrics": METRIC_HEAD + METRICS,
    "cluster_status": STATUS,
    "alerts": ALERTS,
    "cache_status": CACHE,
}


def field(query: str, name: str) -> Field:
    """The declaration of column ``name`` of ``query`` (a key of :data:`QUERIES`); KeyError if none."""
    for f in QUERIES[query]:
        if f.name == name:
            return f
    raise KeyError(f"{query}() has no column {name!r}")
