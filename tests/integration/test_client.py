"""The public query API in embedded mode: one row for this host, safe frames, clear errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pandas as pd
import pytest

import clusternb
from clusternb import frames
from clusternb.config import load_config
from clusternb.queries import Client


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(load_config(interval=0.2)) as c:
        yield c


def test_workers_on_a_bare_machine_prints_nothing() -> None:
    # A fresh interpreter, as a user's kernel would be: no GPU, no Redis, no Dask, and no warning printed.
    code = "import clusternb; df = clusternb.workers(); print(len(df), df.index[0], df['status'].iloc[0])"
    out = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stderr == ""
    assert out.stdout.split() == ["1", socket.gethostname(), "online"]


def test_workers_and_status_describe_this_host(client: Client) -> None:
    df = client.workers()
    assert list(df.index) == [socket.gethostname()]
    assert list(df.columns) == [c.name for c in frames.WORKER_COLUMNS]
    status = client.cluster_status()
    assert status.loc[0, "nodes_online"] == 1
    assert status.loc[0, "cpu_count"] == df["cpu_count"].iloc[0]


def test_metrics_accumulate_and_filter(client: Client) -> None:
    deadline = time.monotonic() + 10
    while len(client.metrics()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    df = client.metrics(since="1h", node=socket.gethostname(), fields=["cpu_percent", "mem_used_bytes"])
    assert len(df) >= 3
    assert list(df.columns) == ["time", "node", "cpu_percent", "mem_used_bytes"]
    assert df["time"].dt.tz is not None and df["time"].is_monotonic_increasing
    assert client.metrics(since="1h", until="30m").empty


def test_mutating_a_result_does_not_change_the_next_one(client: Client) -> None:
    first = client.workers()
    first.loc[:, "cpu_percent"] = -1.0
    del first["host"]
    second = client.workers()
    assert "host" in second.columns and (second["cpu_percent"] >= 0).all()
    m = client.metrics()
    m["cpu_percent"] = 1e9
    assert (client.metrics()["cpu_percent"] <= 100).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.metrics(since="banana"), r"^since: could not understand 'banana'"),
        (lambda c: c.metrics(until="yesterday-ish"), r"^until: "),
        (lambda c: c.metrics(since="5m", until="10m"), "is before since"),
        (lambda c: c.metrics(node="no-such-node"), r"^node: unknown node\(s\) \['no-such-node'\]; known: \["),
        (lambda c: c.metrics(fields=["cpu"]), r"^fields: unknown field\(s\) \['cpu'\]; allowed:"),
        (lambda c: c.alerts(severity="urgent"), r"^severity: 'urgent' is not one of"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(client: Client, call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(client)  # type: ignore[operator]


def test_alerts_frame_is_empty_with_its_columns() -> None:
    # No rules: with the built-in ones a busy test machine (CPU over 90 %) opens a pending alert on this host.
    with Client(load_config(interval=0.2, alert_defaults=False)) as quiet:
        df = quiet.alerts()
    assert df.empty and list(df.columns) == [c.name for c in frames.ALERT_COLUMNS]


def test_closed_client_says_so() -> None:
    c = Client(load_config(interval=0.2))
    c.close()
    assert c.sampler is not None and not c.sampler.running
    with pytest.raises(RuntimeError, match="closed"):
        c.workers()


def test_connect_replaces_the_default_client() -> None:
    first = clusternb.connect(interval=0.5)
    second = clusternb.connect(interval=0.3)
    try:
        assert clusternb.get_client() is second
        assert first.sampler is not None and not first.sampler.running
        assert isinstance(clusternb.workers(), pd.DataFrame)
    finally:
        second.close()


def test_public_names_are_all_exported() -> None:
    public = {n for n in dir(clusternb) if not n.startswith("_") and n != "annotations"}
    modules = {n for n in public if type(getattr(clusternb, n)).__name__ == "module"}
    typing_helpers = {"Any", "Sequence", "TYPE_CHECKING"}
    assert sorted(public - modules - typing_helpers) == sorted(n for n in clusternb.__all__ if n != "__version__")


def test_acknowledge_works_in_a_fresh_process() -> None:
    """The module-level function imports what it needs (it once raised NameError before any other query)."""
    code = (
        "import clusternb\n"
        "try:\n    clusternb.acknowledge('cpu:nowhere')\n"
        "except ValueError as exc:\n    print('ValueError', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ValueError alert_id: no active alert 'cpu:nowhere'" in out.stdout
