"""Frames have exactly the documented columns and dtypes; time and field arguments fail clearly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from clusternb import arguments, frames
from tests.helpers import make_gpu, make_snapshot

NOW = 1_700_000_100.0


def _thresholds(interval: float) -> tuple[float, float]:
    return 2 * interval, 3 * interval


def _assert_schema(df: pd.DataFrame, columns: tuple[frames.Column, ...]) -> None:
    assert list(df.columns) == [c.name for c in columns]
    for col in columns:
        assert df[col.name].dtype == pd.api.types.pandas_dtype(col.dtype), col.name


def test_workers_frame_schema_status_and_gpu_summary() -> None:
    snaps = [
        make_snapshot("b", time=NOW - 1, gpus=(make_gpu(0, temperature_c=70.0), make_gpu(1, util_percent=10.0))),
        make_snapshot("a", time=NOW - 5, labels={"z": "1", "rack": "r2"}),
        make_snapshot("c", time=NOW - 7),
        make_snapshot("d", time=NOW - 1),
    ]
    df = frames.workers_frame(snaps, NOW, _thresholds, departed={"d": NOW})
    _assert_schema(df, frames.WORKER_COLUMNS)
    assert list(df.index) == ["a", "b", "c", "d"] and df.index.name == "node"
    assert list(df["status"]) == ["stale", "online", "offline", "left"]
    assert df["status"].cat.ordered
    assert df.loc["b", "gpu_count"] == 2 and df.loc["b", "gpu_util_percent"] == 30.0
    assert df.loc["b", "gpu_temperature_c"] == 70.0
    assert pd.isna(df.loc["a", "gpu_util_percent"])
    assert df.loc["a", "labels"] == "rack=r2,z=1"
    assert df.loc["a", "last_seen"] == pd.Timestamp(NOW - 5, unit="s", tz="UTC")
    assert df.loc["a", "age_s"] == 5.0


def test_empty_workers_frame_keeps_its_schema() -> None:
    _assert_schema(frames.workers_frame([], NOW, _thresholds), frames.WORKER_COLUMNS)


def test_metrics_frame_orders_by_time_and_selects_fields() -> None:
    snaps = [make_snapshot("a", time=NOW - i, cpu_percent=float(i)) for i in range(3)]
    snaps += [make_snapshot("b", time=NOW - 1)]
    df = frames.metrics_frame(snaps, ("net_rx_bps", "cpu_percent"))
    assert list(df.columns) == ["time", "node", "net_rx_bps", "cpu_percent"]
    assert df["time"].dtype == frames.TIME_DTYPE
    assert list(df["node"]) == ["a", "a", "b", "a"]
    assert df["time"].is_monotonic_increasing


def test_status_frame_totals_only_online_nodes() -> None:
    snaps = [
        make_snapshot("a", time=NOW, cpu_count=4, cpu_percent=50.0, mem_total_bytes=100, mem_used_bytes=50),
        make_snapshot("b", time=NOW, cpu_count=12, cpu_percent=10.0, mem_total_bytes=300, mem_used_bytes=30),
        make_snapshot("c", time=NOW - 100, cpu_count=64),
    ]
    workers = frames.workers_frame(snaps, NOW, _thresholds)
    df = frames.status_frame(workers, NOW, frames.empty_alerts_frame())
    _assert_schema(df, frames.STATUS_COLUMNS)
    row = df.iloc[0]
    assert (row["nodes_total"], row["nodes_online"], row["nodes_offline"]) == (3, 2, 1)
    assert row["cpu_count"] == 16
    assert row["cpu_percent"] == pytest.approx((4 * 50 + 12 * 10) / 16, abs=0.01)
    assert row["mem_used_percent"] == pytest.approx(20.0)
    assert row["health"] == "healthy"


def test_health_from_alert_counts() -> None:
    assert frames.health_from(0, 0) == "healthy"
    assert frames.health_from(2, 0) == "degraded"
    assert frames.health_from(2, 1) == "critical"


def test_empty_alerts_frame_schema() -> None:
    _assert_schema(frames.empty_alerts_frame(), frames.ALERT_COLUMNS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("15m", NOW - 900),
        ("1h30m", NOW - 5400),
        (" 90s ", NOW - 90),
        (60, NOW - 60),
        (timedelta(minutes=2), NOW - 120),
        (pd.Timedelta(days=1), NOW - 86400),
        ("1d", NOW - 86400),
        ("2 hours 5 min", NOW - 7500),
        (datetime.fromtimestamp(NOW - 10, tz=UTC), NOW - 10),
        (pd.Timestamp(NOW - 20, unit="s"), NOW - 20),  # naive: taken as UTC
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
    ],
)
def test_parse_time_accepts_durations_and_times(value: object, expected: float) -> None:
    assert arguments.parse_time(value, NOW, "since") == pytest.approx(expected)


@pytest.mark.parametrize("value", ["banana", "", "-5m", -3, True, float("nan"), object(), timedelta(seconds=-1)])
def test_parse_time_names_the_argument(value: object) -> None:
    with pytest.raises(ValueError, match=r"^until: "):
        arguments.parse_time(value, NOW, "until")


def test_check_fields() -> None:
    assert frames.check_fields(None) == frames.METRIC_FIELDS
    assert frames.check_fields("cpu_percent") == ("cpu_percent",)
    assert frames.check_fields(["cpu_percent", "cpu_percent", "load_1"]) == ("cpu_percent", "load_1")
    with pytest.raises(ValueError, match=r"fields: unknown field\(s\) \['bogus'\]; allowed: cpu_percent"):
        frames.check_fields(["cpu_percent", "bogus"])
    with pytest.raises(ValueError, match="fields"):
        frames.check_fields([])


def test_vectorised_percentages_match_the_snapshot_definitions() -> None:
    snaps = [
        make_snapshot("plain", time=NOW, mem_used_bytes=3 * 2**30),
        make_snapshot("boxed", time=NOW, mem_limit_bytes=2**30, mem_cgroup_used_bytes=2**29),
        make_snapshot("noswap", time=NOW, swap_total_bytes=0, swap_used_bytes=0, disk_total_bytes=0),
        make_snapshot("slow", time=NOW - 15, interval_s=10.0),
    ]
    df = frames.workers_frame(snaps, NOW, _thresholds)
    for s in snaps:
        row = df.loc[s.node]
        assert row["mem_used_percent"] == pytest.approx(s.mem_used_percent)
        assert row["swap_used_percent"] == pytest.approx(s.swap_used_percent)
        assert row["disk_used_percent"] == pytest.approx(s.disk_used_percent)
    assert df.loc["boxed", "mem_used_percent"] == pytest.approx(50.0)
    assert df.loc["slow", "status"] == "online"  # 15 s is fresh for a node sampled every 10 s


def test_missing_values_stay_with_their_node_whatever_the_input_order() -> None:
    # The builder gathers columns in input order and sorts rows at the end: every column must move together.
    snaps = [
        make_snapshot("c", time=NOW, threads=4, mem_limit_bytes=2**30, mem_cgroup_used_bytes=2**28, cpu_limit=1.5),
        make_snapshot("a", time=NOW - 2, labels={"rack": "r1"}),
        make_snapshot("b", time=NOW - 1, threads=8, gpus=(make_gpu(0, mem_used_bytes=5, mem_total_bytes=9),)),
    ]
    df = frames.workers_frame(snaps, NOW, _thresholds)
    _assert_schema(df, frames.WORKER_COLUMNS)
    assert list(df.index) == ["a", "b", "c"]
    assert df["threads"].tolist() == [pd.NA, 8, 4]
    assert df["mem_limit_bytes"].tolist() == [pd.NA, pd.NA, 2**30]
    assert df["cpu_limit"].isna().tolist() == [True, True, False] and df.loc["c", "cpu_limit"] == 1.5
    assert df["gpu_mem_used_bytes"].tolist() == [pd.NA, 5, pd.NA] and df["gpu_count"].tolist() == [0, 1, 0]
    assert df["labels"].tolist() == ["rack=r1", "", ""]
    assert df["age_s"].tolist() == [2.0, 1.0, 0.0]
    assert df.loc["c", "mem_used_percent"] == pytest.approx(25.0)
