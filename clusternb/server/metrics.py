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

from clusternb.server.service import DataService, Topic

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from clusternb.server.app import ClusterNBApp

#: Worker columns exported per node: column -> (metric name, help).
NODE_GAUGES = {
    "cpu_percent": ("clusternb_node_cpu_percent", "CPU busy over the last interval, percent"),
    "load_1": ("clusternb_node_load1", "1-minute load average"),
    "mem_used_bytes": ("clusternb_node_memory_used_bytes", "host memory in use"),
    "mem_total_bytes": ("clusternb_node_memory_total_bytes", "host memory"),
    "mem_used_percent": ("clusternb_node_memory_used_percent", "memory in use, percent"),
    "disk_used_percent": ("clusternb_node_disk_used_percent", "filesystem used, percent"),
    "net_rx_bps": ("clusternb_node_network_receive_bytes_per_second", "network received, bytes/s"),
    "net_tx_bps": ("clusternb_node_network_transmit_bytes_per_second", "network sent, bytes/s"),
    "gpu_util_percent": ("clusternb_node_gpu_util_percent", "mean GPU utilisation, percent"),
    "age_s": ("clusternb_node_sample_age_seconds", "seconds since the node's newest sample"),
}
STATUS_GAUGES = ("nodes_total", "nodes_online", "nodes_stale", "nodes_offline", "alerts_firing", "alerts_critical")


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
            up = GaugeMetricFamily("clusternb_node_up", "1 when the node is online", labels=["node", "status"])
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
        summary = self.service.latest("status")
        if summary is not None and len(summary):
            row = summary.iloc[0]
            for column in STATUS_GAUGES:
                yield GaugeMetricFamily(f"clusternb_cluster_{column}", column.replace("_", " "), value=row[column])
            health = GaugeMetricFamily("clusternb_cluster_health", "1 for the current health", labels=["health"])
            for level in ("healthy", "degraded", "critical"):
                health.add_metric([level], 1.0 if str(row["health"]) == level else 0.0)
            yield health
        cache = self.service.client.cache.status()
        for field in ("hits", "misses", "loads", "errors"):
            counter = CounterMetricFamily(f"clusternb_cache_{field}", f"query cache {field}", labels=["namespace"])
            for name, stats in cache["namespaces"].items():
                counter.add_metric([name], float(stats[field]))
            yield counter
        yield CounterMetricFamily("clusternb_cache_fallbacks", "times Redis failed", value=cache["fallbacks"])
        redis_up = 1.0 if cache["redis_state"] == "connected" else 0.0
        yield GaugeMetricFamily("clusternb_cache_redis_up", "1 when Redis answers", value=redis_up)


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


class PrometheusHandler(JupyterHandler):
    """``GET {base_url}clusternb/metrics``; auth as jupyter_server's ``/metrics`` (``authenticate_prometheus``)."""

    @allow_unauthenticated
    async def get(self) -> None:
        if self.settings.get("authenticate_prometheus", True) and not self.logged_in:
            raise web.HTTPError(403)
        ext: ClusterNBApp = self.settings["clusternb"]
        service = ext.service
        if service.latest("workers") is None or service.latest("status") is None:
            # First scrape before any dashboard asked: compute once (in the pool), then read as usual.
            for name in ("workers", "status"):
                await service.get(Topic(name))
        body = await service.run(ext.prometheus.exposition)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)


default_handlers = [(r"/clusternb/metrics", PrometheusHandler)]
