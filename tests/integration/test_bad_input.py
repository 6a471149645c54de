"""Bad input from a person, on the Python API and the CLI: a ValueError/TypeError naming the argument, or
one line on stderr and exit status 2; never a traceback, an OverflowError from deep inside, or a silent guess.
And the two empty answers a new user meets get a line saying why."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import clusternb
from clusternb.arguments import ArgumentError
from clusternb.queries import Client, NoNodesWarning
from tests.redis_server import RedisServer

PY = [sys.executable, "-c"]


def fresh(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (embedded mode: no config file, no Redis)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERNB_")}
    return subprocess.run([*PY, code], capture_output=True, text=True, timeout=120, env={**environ, **env})


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERNB_")}
    return subprocess.run(
        [sys.executable, "-m", "clusternb.cli", *args], capture_output=True, text=True, timeout=120,
        env={**environ, **env},
    )  # fmt: skip


@pytest.fixture(scope="module")
def client() -> Any:
    with Client(clusternb.load_config(interval=3600)) as c:
        yield c


@pytest.mark.parametrize(
    ("kwargs", "named", "kind"),
    [
        ({"since": 10**400}, "since", ValueError),  # was OverflowError
        ({"since": 10**20}, "since", ValueError),  # was an orjson TypeError
        ({"since": "1.5.5"}, "since", ValueError),  # was read as 2005-01-05
        ({"since": "now"}, "since", ValueError),  # was an empty window
        ({"since": "-5m"}, "since", ValueError),
        ({"since": pd.NaT}, "since", ValueError),
        ({"until": "2300-01-01"}, "until", ValueError),
        ({"node": 5}, "node", TypeError),
        ({"node": [5]}, "node", TypeError),
        ({"fields": 5}, "fields", TypeError),
        ({"fields": [None]}, "fields", TypeError),
    ],
)
def test_metrics_arguments_are_checked_and_named(
    client: Client, kwargs: dict[str, Any], named: str, kind: type
) -> None:
    with pytest.raises(kind, match=rf"^{named}: ") as caught:
        client.metrics(**kwargs)
    assert isinstance(caught.value, ArgumentError)


@pytest.mark.parametrize("since", [np.int64(60), np.float32(60.0), 60, "1m", pd.Timedelta("1m")])
def test_numpy_numbers_are_numbers(client: Client, since: Any) -> None:
    assert isinstance(client.metrics(since=since), pd.DataFrame)


@pytest.mark.parametrize(
    ("kwargs", "named", "kind"),
    [
        ({"node": 5}, "node", TypeError),
        ({"active": "yes"}, "active", TypeError),
        ({"since": "soon"}, "since", ValueError),
    ],
)
def test_alerts_arguments_are_checked_and_named(client: Client, kwargs: dict[str, Any], named: str, kind: type) -> None:
    with pytest.raises(kind, match=rf"^{named}: "):
        client.alerts(**kwargs)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ("panel(interval=-1)", "interval"),
        ("panel(top_k=-1)", "top_k"),
        ("panel(top_k='x')", "top_k"),
        ("panel(since='bogus')", "since"),
        ("metrics_panel(fields=5)", "fields"),
        ("status_panel(interval=float('nan'))", "interval"),
    ],
)
def test_panel_arguments_are_checked_before_any_widget_exists(call: str, named: str) -> None:
    code = f"""
import gc, clusternb
try:
    clusternb.{call}
except (ValueError, TypeError) as exc:
    print("refused:", exc)
gc.collect()
"""
    out = fresh(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"refused: {named}: ")
    assert out.stderr == ""  # no "Exception ignored in ... __del__ ... '_lock'" after the clear error


def test_connect_names_the_setting() -> None:
    with pytest.raises(ValueError, match="redis_url"):
        clusternb.connect(redis_url="http://x")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("demo", "--port", "99999"), "--port: expected 1 to 65535, got 99999"),
        (("demo", "--agents", "0"), "--agents: expected 1 to 64"),
        (("metrics", "--tail", "-1"), "--tail: expected 0 to"),
        (("metrics", "--since", "-5m"), "since: '-5m' is negative"),
        (("metrics", "--until", "-1h"), "until: '-1h' is negative"),
        (("metrics", "--since", "10000000000000000000000"), "since: 1e+22 seconds is not a duration"),
        (("nosuchcommand",), "invalid choice: 'nosuchcommand'"),
    ],
)
def test_bad_cli_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    out = cli(*args)
    assert out.returncode == 2, out
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.py", "c.ClusterNB.interval = (\n", "line 1: '(' was never closed"),
        ("broken.json", '{"ClusterNB": {"interval": 2,}', "JSONDecodeError"),
        ("raises.py", "raise RuntimeError('from the config file')\n", "RuntimeError: from the config file"),
    ],
)
def test_a_broken_config_file_is_one_line_naming_the_file(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    out = cli("status", CLUSTERNB_CONFIG=str(path))
    assert out.returncode == 2
    assert f"config file {path}" in out.stderr and message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    py = fresh(
        "import clusternb\ntry:\n    clusternb.workers()\nexcept ValueError as e:\n    print(e)",
        CLUSTERNB_CONFIG=str(path),
    )
    assert f"config file {path}" in py.stdout and "Traceback" not in py.stderr


def test_an_empty_redis_says_why_once(redis_server: RedisServer) -> None:
    with Client(clusternb.load_config(redis_url=redis_server.url, interval=3600)) as c:
        with pytest.warns(NoNodesWarning, match="no node has published to .* `clusternb agent"):
            assert c.workers().empty
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert c.workers().empty  # said once
    out = cli("workers", "--redis", redis_server.url)
    assert out.returncode == 0
    assert "note: no node has published to" in out.stderr and "UserWarning" not in out.stderr


def test_embedded_metrics_say_why_the_history_is_short() -> None:
    out = cli("metrics", "--since", "30m")
    assert out.returncode == 0
    assert "note: no Redis configured" in out.stderr


@pytest.mark.parametrize(
    ("kwargs", "named", "kind"),
    [
        ({"alert_id": 5}, "alert_id", TypeError),
        ({"alert_id": "x" * 100_000}, "alert_id", ValueError),
        ({"alert_id": "cpu:n0", "by": 5}, "by", TypeError),
    ],
)
def test_acknowledge_arguments_are_checked_and_named(
    client: Client, kwargs: dict[str, Any], named: str, kind: type
) -> None:
    with pytest.raises(kind, match=rf"^{named}: ") as caught:
        client.acknowledge(**kwargs)
    assert len(str(caught.value)) < 300  # a 100,000-character id is not echoed back


def test_a_node_name_cannot_drive_the_terminal(redis_server: RedisServer) -> None:
    """A name with an escape sequence (clear screen, set title) or a bidi override is printed escaped."""
    import time

    from clusternb.state.redis import RedisStateStore
    from tests.helpers import make_snapshot

    hostile = "evil\x1b[2J\x1b]0;pwned\x07\u202enode"
    store = RedisStateStore(redis_server.url, socket_timeout=5.0)
    store.put(make_snapshot(hostile, time=time.time(), labels={"role": "x\x1b[31m"}))
    store.close()
    out = cli("workers", "--redis", redis_server.url)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\u202e" not in out.stdout
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\u202enode" in out.stdout


@pytest.mark.parametrize(
    ("kwargs", "named", "kind"),
    [
        ({"namespace": "inv", "ttl": -1}, "ttl", ValueError),
        ({"namespace": "inv", "ttl": "60"}, "ttl", TypeError),
        ({"namespace": "inv", "ttl": float("nan")}, "ttl", ValueError),
        ({"namespace": "in:v"}, "namespace", ValueError),
        ({"namespace": 5}, "namespace", TypeError),
        ({"namespace": "inv", "cache": 3}, "cache", TypeError),
        ({"namespace": "inv", "token": "v1"}, "token", TypeError),
    ],
)
def test_cached_checks_its_arguments_where_the_function_is_decorated(
    kwargs: dict[str, Any], named: str, kind: type
) -> None:
    with pytest.raises(kind, match=rf"^{named}: "):
        clusternb.cached(**kwargs)


def test_what_pandas_and_numpy_hand_out_is_accepted(client: Client) -> None:
    """An Index, a Series, an array or dict keys of names, and numpy times, are what a notebook has at hand."""
    nodes = client.workers().index
    for node in (nodes, pd.Series(nodes), np.array(nodes), dict.fromkeys(nodes).keys()):
        assert set(client.metrics(since="5m", node=node)["node"]) <= set(nodes)
    for since in (np.timedelta64(60, "s"), np.timedelta64(60_000_000_000, "ns"), np.datetime64("2026-01-01T00:00")):
        assert isinstance(client.metrics(since=since), pd.DataFrame)


@pytest.mark.parametrize("when", ["2999-01-01", "1900-01-01T00:00Z"])
def test_a_time_outside_1970_to_2100_says_so(client: Client, when: str) -> None:
    with pytest.raises(ValueError, match=r"^until: .* is outside 1970-2100"):
        client.metrics(since="1h", until=when)


def test_an_empty_node_list_is_refused_with_a_hint(client: Client) -> None:
    with pytest.raises(ValueError, match=r"^node: an empty list selects nothing"):
        client.metrics(node=[])


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ("clusternb.connect(5)", "config"),
        ("clusternb.panel(client=5)", "client"),
        ("clusternb.workers_panel(client='x')", "client"),
        ("clusternb.connect(node_name='x' * 5000)", "node_name"),
        ("clusternb.connect(labels={str(i): 'v' for i in range(100)})", "labels"),
    ],
)
def test_objects_and_settings_of_the_wrong_kind_are_named(call: str, named: str) -> None:
    out = fresh(f"import clusternb\ntry:\n    {call}\nexcept (ValueError, TypeError) as exc:\n    print(exc)")
    assert out.returncode == 0 and out.stdout.startswith(f"{named}: "), (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr
