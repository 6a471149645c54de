"""The field catalogue is the one declaration of every column: the frames, ``clusternb.fields()``, the metric
names, the Prometheus series and the README's tables all agree with it, and its bounds are the model's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import pytest

import clusternb
from clusternb import columns, frames, schema, vocab
from clusternb.cache import Cache
from clusternb.cache.memory import MemoryBackend
from clusternb.kernel_usage.frame import Viewer, kernels_frame
from clusternb.model import NodeSnapshot, SchemaError
from tests.helpers import make_gpu, make_report, make_snapshot

NOW = 1_700_000_100.0
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _frames() -> dict[str, pd.DataFrame]:
    """One frame of each query, built by the frame builders from plausible snapshots."""
    snaps = [make_snapshot("a", time=NOW - 1, gpus=(make_gpu(0),)), make_snapshot("b", time=NOW - 9)]
    workers = frames.workers_frame(snaps, NOW, lambda interval: (2 * interval, 3 * interval))
    alerts = frames.empty_alerts_frame()
    cache = Cache(MemoryBackend())
    cache.get_or_compute("workers", "k", lambda: 1)
    return {
        "workers": workers,
        "metrics": frames.metrics_frame(snaps, frames.METRIC_FIELDS),
        "cluster_status": frames.status_frame(workers, NOW, alerts),
        "alerts": alerts,
        "kernels": kernels_frame([make_report()], NOW, {"a": 2**34}, Viewer("me")),
        "cache_status": cache.status_frame(),
    }


def test_fields_lists_every_column_of_every_query_with_its_dtype() -> None:
    catalogue = clusternb.fields()
    assert list(catalogue.columns) == ["query", "name", "dtype", "unit", "description", "min", "max"]
    built = _frames()
    assert list(catalogue["query"].unique()) == list(built)
    for query, df in built.items():
        rows = catalogue[catalogue["query"] == query]
        assert list(rows["name"]) == list(df.columns), query
        assert list(rows["dtype"]) == [columns.dtype_text(df[c].dtype) for c in df.columns], query
    assert catalogue["description"].str.len().min() > 0


def test_fields_is_a_new_frame_on_every_call() -> None:
    first = clusternb.fields()
    first.loc[0, "description"] = "changed"
    assert clusternb.fields().loc[0, "description"] != "changed"


def test_import_clusternb_does_not_import_pandas() -> None:
    code = "import sys, clusternb; assert 'pandas' not in sys.modules; clusternb.fields; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr


def test_frame_column_tables_and_metric_names_follow_from_the_catalogue() -> None:
    for table, fields in ((frames.WORKER_COLUMNS, schema.WORKERS), (frames.STATUS_COLUMNS, schema.STATUS),
                          (frames.ALERT_COLUMNS, schema.ALERTS), (frames.CACHE_COLUMNS, schema.CACHE),
                          (frames.METRIC_COLUMNS, schema.METRICS)):  # fmt: skip
        assert [(c.name, c.doc, c.unit) for c in table] == [(f.name, f.description, f.unit) for f in fields]
    assert vocab.METRIC_NAMES == frames.METRIC_FIELDS == tuple(f.name for f in schema.WORKERS if f.metric)


def _snapshot_fields() -> list[schema.Field]:
    names = {f.name for f in msgspec.structs.fields(NodeSnapshot)}
    return [f for f in schema.WORKERS if f.name in names and f.max is not None]


@pytest.mark.parametrize("field", _snapshot_fields(), ids=lambda f: f.name)
def test_declared_bounds_are_the_ones_records_are_validated_against(field: schema.Field) -> None:
    record = make_snapshot().to_dict()
    assert field.min is not None and field.max is not None
    exclusive = field.name == "interval_s"  # declared gt=0: its minimum is a limit, not a value
    cases = [(field.max, True), (field.min, not exclusive), (field.max * 2, False), (field.min - 1, False)]
    for value, ok in cases:
        record[field.name] = int(value) if field.dtype == "Int64" else float(value)
        if field.name.startswith("mem_"):  # keep used <= total, which is checked separately
            record["mem_total_bytes"] = max(record["mem_total_bytes"], record[field.name])
        if ok and field.name in ("swap_used_bytes", "disk_used_bytes"):
            record[field.name.replace("used", "total")] = record[field.name]
        if ok:
            assert getattr(NodeSnapshot.from_dict(record), field.name) == value
        else:
            with pytest.raises(SchemaError):
                NodeSnapshot.from_dict(record)
        record = make_snapshot().to_dict()


class _Service:
    """What the Prometheus collector reads: the newest frames and the cache counters."""

    def __init__(self, built: dict[str, pd.DataFrame]) -> None:
        self.frames = {"workers": built["workers"], "status": built["cluster_status"], "kernels": built["kernels"]}
        cache = Cache(MemoryBackend())
        cache.get_or_compute("workers", "k", lambda: 1)
        self.client = type("C", (), {"cache": cache})()

    def latest(self, topic: str) -> pd.DataFrame | None:
        return self.frames.get(topic)


def _families() -> list[Any]:
    from clusternb.server.metrics import ClusterCollector

    return list(ClusterCollector(_Service(_frames())).collect())  # type: ignore[arg-type]


def test_every_prometheus_help_text_comes_from_the_catalogue() -> None:
    from clusternb.server.metrics import PREFIXES

    declared = {
        PREFIXES[query] + f.prometheus: f.help for query in PREFIXES for f in schema.QUERIES[query] if f.prometheus
    }
    families = {family.name: family.documentation for family in _families()}
    assert set(families) == set(declared)
    for name, documentation in families.items():
        assert documentation.startswith(declared[name]), name


def test_prometheus_names_are_kept() -> None:
    """Every name a dashboard or alert rule may query stays (a new field adds one; none may vanish)."""
    assert {family.name for family in _families()} >= {
        "clusternb_node_up", "clusternb_node_cpu_percent", "clusternb_node_load1",
        "clusternb_node_memory_used_bytes", "clusternb_node_memory_total_bytes", "clusternb_node_memory_used_percent",
        "clusternb_node_disk_used_percent", "clusternb_node_network_receive_bytes_per_second",
        "clusternb_node_network_transmit_bytes_per_second", "clusternb_node_gpu_util_percent",
        "clusternb_node_sample_age_seconds", "clusternb_cluster_nodes_total", "clusternb_cluster_nodes_online",
        "clusternb_cluster_nodes_stale", "clusternb_cluster_nodes_offline", "clusternb_cluster_alerts_firing",
        "clusternb_cluster_alerts_critical", "clusternb_cluster_health", "clusternb_cache_hits",
        "clusternb_cache_misses", "clusternb_cache_loads", "clusternb_cache_errors", "clusternb_cache_fallbacks",
        "clusternb_cache_redis_up",
    }  # fmt: skip


def test_readme_field_tables_match_the_catalogue() -> None:
    catalogue = clusternb.fields()
    head = {f.name for f in schema.METRIC_HEAD}
    for row in catalogue.itertuples():
        if row.query == "metrics" and row.name in head:
            continue  # named in the metrics() table's title
        line = f"| `{row.name}` | {row.dtype} | {row.unit} | {row.description} |"
        assert line in README, line
