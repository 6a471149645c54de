"""Prometheus text at ``{base_url}clusternb/metrics``: the cluster as gauges, plus clusternb's own health.

A private ``CollectorRegistry`` keeps these series apart from jupyter_server's global registry (its own
``/metrics``). The cluster collector reads the frames the query service last computed; it never samples or
queries, so a scrape costs a walk over the newest frame. The handler runs the exposition in the query
thread pool and follows jupyter_server's ``authenticate_prometheus`` setting, exactly like Jupyter's /metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from tornado import web

from clusternb import schema
from clusternb.server.routes import AppHandler, Route
from clusternb.server.service import DataService, Topic

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: Prometheus prefix of each query's series: ``clusternb_node_<base name>`` is one series per node.
PREFIXES = {
    "workers": "clusternb_node_", "cluster_status": "clusternb_cluster_", "cache_status": "clusternb_cache_",
    "kernels": "clusternb_kernel_",
}  # fmt: skip


def series(query: str) -> dict[str, tuple[str, str]]:
    """The exported columns of ``query``: column -> (metric name, HELP), from the field catalogue's
    ``prometheus`` base names and descriptions."""
    prefix = PREFIXES[query]
    return {f.name: (prefix + f.prometheus, f.help) for f in schema.QUERIES[query] if f.prometheus}


#: Numeric worker columns exported as one gauge per node (``status`` is the labelled ``clusternb_node_up``).
NODE_GAUGES = {k: v for k, v in series("workers").items() if k != "status"}
#: Kernel columns exported as one gauge per kernel, labelled without its path (a path names a person's work).
KERNEL_GAUGES = series("kernels")
KERNEL_LABELS = ["node", "kernel_id", "kernel_name"]
#: Status columns exported as gauges (``health`` is the labelled ``clusternb_cluster_health``).
STATUS_GAUGES = {k: v for k, v in series("cluster_status").items() if k != "health"}
#: Cache counters per namespace (``fallbacks``: one process-wide counter; ``redis_state``: ``redis_up``).
CACHE_COUNTERS = {k: v for k, v in series("cache_status").items() if k not in ("fallbacks", "redis_state")}


def _number(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    number = float(value)
    return None if math.isnan(number) else number


class ClusterCollector(Collector):
    """Reads the newest workers/status frames and the cache counters at scrape time."""

    def __init__(self, service: DataService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        workers = self.service.latest("workers")
        if workers is not None:
            yield from _node_families(workers)
        kernels = self.service.latest("kernels")
        if kernels is not None:
            yield from _kernel_families(kernels)
        summary = self.service.latest("status")
        if summary is not None and len(summary):
            yield from _status_families(summary.iloc[0])
        yield from _cache_families(self.service.client.cache.status())


def _indicator(query: str, column: str, when: str) -> tuple[str, str]:
    """Name and HELP of a labelled 0/1 series standing for a category column: its description, and when it is 1."""
    name, doc = series(query)[column]
    return name, f"{doc}; 1 {when}"


# Looked up in the catalogue once, at import: a scrape only fills values in.
NODE_UP = _indicator("workers", "status", "when the node is online")
HEALTH = _indicator("cluster_status", "health", "for the current health")
FALLBACKS = series("cache_status")["fallbacks"]
REDIS_UP = _indicator("cache_status", "redis_state", "when Redis answers (connected)")


def _node_families(workers: pd.DataFrame) -> Iterator[Metric]:
    up = GaugeMetricFamily(*NODE_UP, labels=["node", "status"])
    for node, status in zip(workers.index, workers["status"].astype(str), strict=True):
        up.add_metric([str(node), status], 1.0 if status == "online" else 0.0)
    yield up
    for column, (name, doc) in NODE_GAUGES.items():
        family = GaugeMetricFamily(name, doc, labels=["node"])
        for node, value in zip(workers.index, workers[column].tolist(), strict=True):
            number = _number(value)
            if number is not None:
                family.add_metric([str(node)], number)
        yield family


def _kernel_families(kernels: pd.DataFrame) -> Iterator[Metric]:
    labels = list(
        zip(kernels["node"].astype(str), kernels.index.astype(str), kernels["kernel_name"].astype(str), strict=True)
    )
    for column, (name, doc) in KERNEL_GAUGES.items():
        family = GaugeMetricFamily(name, doc, labels=KERNEL_LABELS)
        for label, value in zip(labels, kernels[column].tolist(), strict=True):
            number = _number(value)
            if number is not None:
                family.add_metric(list(label), number)
        yield family


def _status_families(row: pd.Series) -> Iterator[Metric]:
    for column, (name, doc) in STATUS_GAUGES.items():
        yield GaugeMetricFamily(name, doc, value=row[column])
    health = GaugeMetricFamily(*HEALTH, labels=["health"])
    for level in schema.HEALTH_ORDER:
        health.add_metric([level], 1.0 if str(row["health"]) == level else 0.0)
    yield health


def _cache_families(cache: dict[str, Any]) -> Iterator[Metric]:
    for field, (name, doc) in CACHE_COUNTERS.items():
        counter = CounterMetricFamily(name, doc, labels=["namespace"])
        for namespace, stats in cache["namespaces"].items():
            counter.add_metric([namespace], float(stats[field]))
        yield counter
    yield CounterMetricFamily(*FALLBACKS, value=cache["fallbacks"])
    yield GaugeMetricFamily(*REDIS_UP, value=1.0 if cache["redis_state"] == "connected" else 0.0)


class ServerMetrics:
    """The extension's registry: the cluster collector and the server's own gauges and histograms."""

    def __init__(self, service: DataService) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ClusterCollector(service))
        self.ws_clients = Gauge(
            "clusternb_websocket_clients", "open clusternb WebSocket connections", registry=self.registry
        )
        self.latency = Histogram(
            "clusternb_request_duration_seconds",
            "clusternb REST request latency",
            labelnames=["endpoint", "code"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )

        self.fanout = Histogram(
            "clusternb_websocket_fanout_seconds",
            "time from a WebSocket push message's creation until its last subscriber's write completed",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0, 2.5, 5.0),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class PrometheusHandler(AppHandler, JupyterHandler):
    """``GET {base_url}clusternb/metrics``; auth as jupyter_server's ``/metrics`` (``authenticate_prometheus``)."""

    @allow_unauthenticated
    async def get(self) -> None:
        if self.settings.get("authenticate_prometheus", True) and not self.logged_in:
            raise web.HTTPError(403)
        service = self.app.service
        if service.latest("workers") is None or service.latest("status") is None:
            # First scrape before any dashboard asked: compute once (in the pool), then read as usual.
            for name in ("workers", "status"):
                await service.get(Topic(name))
        await service.get(Topic("kernels"))  # no page keeps kernels fresh: from the query cache at each scrape
        body = await service.run(self.app.prometheus.exposition)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)


default_handlers: list[Route] = [(r"/clusternb/metrics", PrometheusHandler)]
