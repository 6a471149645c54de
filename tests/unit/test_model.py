"""Snapshots round-trip losslessly through JSON and reject what this schema version did not write."""

from __future__ import annotations

import gc
import json

import orjson
import pytest

from clusternb.model import SCHEMA_VERSION, NodeSnapshot, SchemaError, decode_snapshot_json, decode_snapshots_json
from tests.helpers import make_gpu, make_snapshot


def test_round_trip_through_json_is_lossless() -> None:
    snap = make_snapshot(
        labels={"rack": "a1", "role": "gpu"},
        gpus=(make_gpu(0), make_gpu(1, power_w=None)),
        cpu_limit=1.5,
        mem_limit_bytes=2**30,
        mem_cgroup_used_bytes=2**29,
        threads=4,
        time=1_700_000_000.123456,
    )
    again = NodeSnapshot.from_dict(orjson.loads(orjson.dumps(snap.to_dict())))
    assert again == snap
    assert again.to_dict() == snap.to_dict()


def test_decoded_records_cost_the_garbage_collector_nothing() -> None:
    # 10,000 records decoded per read of a busy cluster: none of them (nor their label dicts) may join the
    # collector's lists, or every later collection walks them all.
    snap = decode_snapshot_json(orjson.dumps(make_snapshot(labels={"rack": "a1"}, gpus=(make_gpu(0),)).to_dict()))
    assert snap.labels == {"rack": "a1"} and snap.gpus[0].index == 0
    assert not gc.is_tracked(snap)
    assert not gc.is_tracked(snap.labels)
    assert not gc.is_tracked(snap.gpus[0])


def test_decoding_many_records_is_all_or_nothing() -> None:
    good = [orjson.dumps(make_snapshot(f"n{i}").to_dict()) for i in range(3)]
    assert [s.node for s in decode_snapshots_json(good)] == ["n0", "n1", "n2"]
    assert decode_snapshots_json([]) == []
    other_version = orjson.dumps({**make_snapshot("v2").to_dict(), "schema": SCHEMA_VERSION + 1})
    for bad in (b"{not json", b"[1, 2]", other_version, good[0] + b"," + good[1]):
        with pytest.raises(SchemaError):
            decode_snapshots_json([*good, bad])


def test_every_record_carries_the_schema_version() -> None:
    assert make_snapshot().to_dict()["schema"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": SCHEMA_VERSION + 1}, "schema"),
        ({"cpu_percent": "high"}, "cpu_percent"),
        ({"cpu_count": True}, "cpu_count"),
        ({"cpu_count": 2.5}, "cpu_count"),
        ({"labels": {"a": 1}}, "labels"),
        ({"gpus": "none"}, "gpus"),
        ({"gpus": [{"index": 0}]}, "name"),
        ({"evil": "__import__('os')"}, "unknown"),
        ({"load_1": float("nan")}, "load_1"),
    ],
)
def test_foreign_or_corrupt_records_raise_schema_error(change: dict[str, object], message: str) -> None:
    data = make_snapshot().to_dict()
    data.update(change)
    with pytest.raises(SchemaError, match=message):
        NodeSnapshot.from_dict(data)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cpu_percent": 1e308}, "cpu_percent"),
        ({"cpu_percent": -0.5}, "cpu_percent"),
        ({"mem_used_bytes": -1}, "mem_used_bytes"),
        ({"mem_total_bytes": 2**70}, "mem_total_bytes"),
        ({"cpu_count": -4}, "cpu_count"),
        ({"interval_s": -5}, "interval_s"),
        ({"interval_s": 0}, "interval_s"),
        ({"time": 1e308}, "time"),
        ({"time": -1e10}, "time"),
        ({"net_rx_bps": 1e300}, "net_rx_bps"),
        ({"load_1": -1}, "load_1"),
        ({"uptime_s": -3}, "uptime_s"),
        ({"node": ""}, "node"),
        ({"node": "n" * 10_000}, "node"),
        ({"labels": {f"k{i}": "v" for i in range(1000)}}, "labels"),
        ({"mem_used_bytes": 32 * 2**30}, "mem_used_bytes is more than mem_total_bytes"),
        ({"disk_used_bytes": 2**50}, "disk_used_bytes is more than disk_total_bytes"),
        ({"gpus": [{"index": 0, "name": "g", "uuid": "u", "util_percent": 400.0}]}, "util_percent"),
        ({"gpus": [{"index": 0, "name": "g", "uuid": "u", "mem_used_bytes": 9, "mem_total_bytes": 1}]}, "GPU"),
    ],
)
def test_absurd_values_that_fit_the_types_are_rejected_by_their_bounds(change: dict[str, object], field: str) -> None:
    """Schema-valid but physically impossible: what once reached frames as OverflowError or as 'true' numbers."""
    data = make_snapshot().to_dict()
    data.update(change)
    with pytest.raises(SchemaError, match=field):
        NodeSnapshot.from_dict(data)
    with pytest.raises(SchemaError, match=field):  # the JSON path readers use, in C
        decode_snapshot_json(json.dumps(data).encode())  # stdlib json: writes 2**70 as orjson cannot


def test_missing_required_field_is_named() -> None:
    data = make_snapshot().to_dict()
    del data["mem_total_bytes"]
    with pytest.raises(SchemaError, match="mem_total_bytes"):
        NodeSnapshot.from_dict(data)


@pytest.mark.parametrize("garbage", [None, [], "x", 3])
def test_non_mapping_is_rejected(garbage: object) -> None:
    with pytest.raises(SchemaError):
        NodeSnapshot.from_dict(garbage)  # type: ignore[arg-type]


def test_derived_percentages_use_the_container_limit_when_present() -> None:
    host = make_snapshot(mem_total_bytes=100, mem_used_bytes=25, mem_available_bytes=75)
    assert host.mem_used_percent == 25.0
    limited = make_snapshot(mem_total_bytes=100, mem_used_bytes=25, mem_limit_bytes=50, mem_cgroup_used_bytes=40)
    assert limited.mem_used_percent == 80.0
    assert make_snapshot(swap_total_bytes=0, swap_used_bytes=0).swap_used_percent == 0.0


def test_records_a_source_builds_from_network_data_are_bounded_too() -> None:
    """A Dask scheduler's numbers are network data: ``checked`` applies the bounds a constructor does not."""
    from clusternb.model import checked
    from clusternb.sources.dask import worker_snapshot

    worker = {"nthreads": 2, "memory_limit": 2**30, "host": "10.0.0.9", "metrics": {"memory": 2**20, "cpu": 50.0}}
    good = worker_snapshot("tcp://10.0.0.9:40000", worker, 2.0, 1_700_000_000.0)
    assert checked(good) == good
    absurd = {**worker, "metrics": {**worker["metrics"], "host_net_io": {"read_bps": 1e308}}}
    with pytest.raises(SchemaError, match="net_rx_bps"):
        checked(worker_snapshot("tcp://10.0.0.9:40000", absurd, 2.0, 1_700_000_000.0))
