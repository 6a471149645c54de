"""A real Dask LocalCluster as a source: worker rows and task counts agree with the scheduler."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from distributed import Client as DaskClient
from distributed import LocalCluster

from clusternb.config import load_config
from clusternb.queries import Client
from clusternb.state.memory import MemoryStateStore


@pytest.fixture(scope="module")
def dask_client() -> Iterator[DaskClient]:
    with (
        LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address="127.0.0.1:0") as cluster,
        DaskClient(cluster, set_as_default=False) as client,
    ):
        yield client


def test_workers_threads_and_memory_match_the_scheduler(dask_client: DaskClient) -> None:
    with Client(load_config(interval=0.5), store=MemoryStateStore(), sample_local=False, dask=dask_client) as c:
        workers = c.workers()
        dask_rows = workers[workers["source"] == "dask"]
        info = dask_client.scheduler_info()["workers"]
        assert len(dask_rows) == len(info) == 2
        expected = {f"dask:{w['name']}": w for w in info.values()}
        for node, row in dask_rows.iterrows():
            w = expected[node]
            assert row["threads"] == w["nthreads"] == 2
            assert row["mem_total_bytes"] == w["memory_limit"]
            assert row["mem_used_bytes"] > 0
            assert row["status"] == "online"
        status = c.cluster_status().iloc[0]
        assert status["dask_workers"] == 2 and status["nodes_online"] == 2


def test_task_counts_and_history(dask_client: DaskClient) -> None:
    with Client(load_config(interval=0.3), store=MemoryStateStore(), sample_local=False, dask=dask_client) as c:
        futures = dask_client.map(lambda x: x + 1, range(20))
        dask_client.gather(futures)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if c.cluster_status().loc[0, "tasks_memory"] >= 20:
                break
            time.sleep(0.2)
        assert c.cluster_status().loc[0, "tasks_memory"] >= 20
        assert c.cluster_status().loc[0, "tasks_erred"] == 0
        history = c.metrics("5m", fields=["cpu_percent", "mem_used_bytes"])
        assert set(history["node"]) == {"dask:0", "dask:1"} and len(history) >= 4
        del futures


def test_dask_by_address_and_bad_argument(dask_client: DaskClient) -> None:
    address = dask_client.scheduler.address
    with Client(load_config(interval=0.5, dask_scheduler=address), store=MemoryStateStore(), sample_local=False) as c:
        assert (c.workers()["source"] == "dask").sum() == 2
    with pytest.raises(ValueError, match="dask"):
        Client(load_config(), store=MemoryStateStore(), sample_local=False, dask=42)
