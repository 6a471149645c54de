"""The clusternb command: readable tables, JSON for machines, one-line errors with exit status 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clusternb.cli", *args], capture_output=True, text=True, timeout=60)


def test_workers_json_is_machine_readable() -> None:
    out = run("workers", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["node"] for r in rows] == [socket.gethostname()]
    assert rows[0]["status"] == "online" and rows[0]["last_seen"].endswith("Z")


def test_status_and_workers_print_tables() -> None:
    status = run("status")
    assert status.returncode == 0 and "nodes        1 total: 1 online" in status.stdout
    workers = run("workers")
    assert workers.returncode == 0 and socket.gethostname() in workers.stdout and "GiB" in workers.stdout


def test_metrics_with_fields() -> None:
    out = run("metrics", "--since", "5m", "--fields", "cpu_percent,net_rx_bps", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows and set(rows[0]) == {"time", "node", "cpu_percent", "net_rx_bps"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("metrics", "--since", "banana"), "since: could not understand 'banana'"),
        (("metrics", "--fields", "nope"), "fields: unknown field(s) ['nope']"),
        (("metrics", "--node", "ghost"), "node: unknown node(s) ['ghost']"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_help_explains_every_command() -> None:
    out = run("--help")
    for word in ("status", "workers", "metrics", "alerts", "config", "CLUSTERNB_REDIS_URL"):
        assert word in out.stdout
    sub = run("metrics", "--help")
    assert "--since" in sub.stdout and "cpu_percent" in sub.stdout


def test_config_masks_the_redis_password() -> None:
    out = run("config", "--json", "--redis", "redis://:hunter2@db:6379/0")
    assert out.returncode == 0
    assert "hunter2" not in out.stdout and json.loads(out.stdout)["redis_url"] == "redis://:***@db:6379/0"


@pytest.mark.parametrize("command", ["status", "workers", "alerts", "metrics"])
def test_an_unreachable_redis_is_one_line_and_exit_3_never_a_traceback(command: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = run(command, "--redis", f"redis://:hunter2@127.0.0.1:{port}/0")
    assert out.returncode == 3, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "redis never reached" in lines[0] and "own view" in lines[0], out.stderr
    assert "Traceback" not in out.stderr and "hunter2" not in out.stderr + out.stdout
    if command == "status":
        assert "redis        never reached since" in out.stdout


@pytest.mark.redis
def test_a_wrong_password_is_one_line_and_exit_3() -> None:
    from tests.redis_server import RedisServer

    server = RedisServer(password="right").start()
    try:
        out = run("status", "--redis", f"redis://:wrong@127.0.0.1:{server.port}/0")
    finally:
        server.stop()
    assert out.returncode == 3 and "refused the password" in out.stderr and "Traceback" not in out.stderr
    assert "wrong" not in out.stderr.replace("the password", "")
