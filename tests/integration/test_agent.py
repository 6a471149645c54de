"""Agents as real processes against a real redis-server: they publish, die, leave, and outlive Redis restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clusternb.agent import Agent
from clusternb.redisio.errors import Unavailable
from clusternb.redisio.link import LinkOptions, RedisLink
from clusternb.state.redis import RedisStateStore
from tests.helpers import make_snapshot, stop_process
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

INTERVAL = 0.5
DEADLINE = 60.0  # generous: two shared cores, and each agent imports pandas at start


class AgentProc:
    """One ``clusternb agent`` process with its log file."""

    def __init__(self, name: str, url: str, log: Path) -> None:
        self.name = name
        self.log = log
        cmd = [sys.executable, "-m", "clusternb.cli", "agent", "--redis", url, "--name", name]
        cmd += ["--interval", str(INTERVAL), "--label", f"agent={name}"]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def cleanup(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def start_agents(redis_server: RedisServer, tmp_path: Path) -> Iterator[Callable[[int], list[AgentProc]]]:
    """Starts agents; every one is stopped at teardown, whatever the test did or how it failed."""
    started: list[AgentProc] = []

    def start(n: int) -> list[AgentProc]:
        new = [AgentProc(f"agent-{len(started) + i + 1}", redis_server.url, tmp_path / f"a{i}.log") for i in range(n)]
        started.extend(new)
        return new

    yield start
    for agent in started:
        agent.cleanup()


@pytest.fixture
def reader(redis_server: RedisServer) -> Iterator[RedisStateStore]:
    store = RedisStateStore(redis_server.url, socket_timeout=2.0)
    yield store
    store.close()


def wait_for(what: str, check: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Unavailable:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def last_seen(store: RedisStateStore) -> dict[str, float]:
    return {s.node: s.time for s in store.latest()}


def test_agents_publish_die_and_leave(start_agents: Callable[[int], list[AgentProc]], reader: RedisStateStore) -> None:
    a1, a2, a3 = start_agents(3)
    names = {a1.name, a2.name, a3.name}
    wait_for("all three agents to publish", lambda: set(last_seen(reader)) == names)
    snap = {s.node: s for s in reader.latest()}[a3.name]
    assert snap.source == "agent" and snap.labels == {"agent": a3.name} and snap.interval_s == INTERVAL
    first = last_seen(reader)
    wait_for("every agent to publish again", lambda: all(last_seen(reader)[n] > first[n] for n in names))

    a1.proc.send_signal(signal.SIGKILL)
    a1.proc.wait()
    frozen = last_seen(reader)[a1.name]  # no write can follow a reaped process
    later = last_seen(reader)[a3.name]
    wait_for("a3 to publish four more samples", lambda: last_seen(reader)[a3.name] >= later + 4 * INTERVAL)
    assert last_seen(reader)[a1.name] == frozen
    assert a1.name not in reader.departed()  # a crash is not a clean departure

    a2.proc.send_signal(signal.SIGTERM)
    assert a2.proc.wait(30) == 0
    departed = reader.departed()
    assert set(departed) == {a2.name}
    assert departed[a2.name] >= last_seen(reader)[a2.name]
    assert "departure recorded" in a2.text()


def test_sigint_also_leaves_cleanly(start_agents: Callable[[int], list[AgentProc]], reader: RedisStateStore) -> None:
    (agent,) = start_agents(1)
    wait_for("the agent to publish", lambda: agent.name in last_seen(reader))
    agent.proc.send_signal(signal.SIGINT)
    assert agent.proc.wait(30) == 0
    assert agent.name in reader.departed()
    assert "Traceback" not in agent.text()


def test_agents_outlive_a_redis_restart(
    start_agents: Callable[[int], list[AgentProc]], reader: RedisStateStore, redis_server: RedisServer
) -> None:
    agents = start_agents(3)
    names = {a.name for a in agents}
    wait_for("all three agents to publish", lambda: set(last_seen(reader)) == names)

    redis_server.kill()
    wait_for("each agent to notice", lambda: all("redis unreachable" in a.text() for a in agents))
    time.sleep(3.0)  # several failed retries (backoff 0.5, 1, 2 s): still logged only once
    assert all(a.proc.poll() is None for a in agents), "an agent exited on its own"
    redis_server.restart()  # same port, empty: nothing persisted

    wait_for("all three agents to publish again", lambda: set(last_seen(reader)) == names, timeout=90)
    wait_for("each agent to log its recovery", lambda: all("reachable again" in a.text() for a in agents))
    for agent in agents:
        log = agent.text()
        assert log.count("redis unreachable") == 1, log
        assert log.count("reachable again") == 1, log
        assert agent.proc.poll() is None


def test_agent_backs_off_and_resumes_in_process(redis_server: RedisServer) -> None:
    """The same loop, stepped by hand, against a real Redis that goes away and comes back. The backoff is the
    link's (the one retry policy): while it runs, a publish fails at once, without a round trip."""
    link = RedisLink(redis_server.url, LinkOptions(socket_timeout=1.0, backoff_base=0.5, backoff_cap=1.0))
    store = RedisStateStore(link)
    agent = Agent(lambda: make_snapshot("me", time=time.time()), store, 1.0, "me")
    assert agent.step() is not None and agent.published == 1 and agent.reachable

    redis_server.kill()
    agent.step()
    assert not agent.reachable and agent.outages == 1 and agent.dropped == 1
    failed_calls = link.health.failures
    agent.step()  # inside the backoff: sampled, not sent
    assert (agent.samples, agent.dropped) == (3, 2) and link.health.failures == failed_calls
    assert link.health.state == "failing"

    redis_server.start()
    deadline = time.monotonic() + 10
    while not agent.reachable and time.monotonic() < deadline:
        time.sleep(0.1)
        agent.step()
    assert agent.reachable and agent.published == 2 and agent.outages == 1
    assert [s.node for s in store.latest()] == ["me"]
    assert agent.leave() and "me" in store.departed()
    store.close()
    link.close()


def test_a_sample_error_does_not_stop_the_agent(redis_server: RedisServer) -> None:
    calls = [0]

    def flaky() -> object:
        calls[0] += 1
        if calls[0] == 1:
            raise OSError("disk vanished")
        return make_snapshot("me", time=time.time())

    store = RedisStateStore(redis_server.url)
    agent = Agent(flaky, store, 1.0, "me")  # type: ignore[arg-type]
    assert agent.step() is None
    assert agent.step() is not None and agent.published == 1
    store.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clusternb.cli", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--redis", "http://nope:1"), "not a Redis URL"),
        (("--redis", "redis://127.0.0.1:1", "--label", "oops"), "--label: expected KEY=VALUE, got 'oops'"),
        (("--redis", "redis://127.0.0.1:1", "--interval", "fast"), "--interval: expected a number, got 'fast'"),
        (("--redis", "redis://127.0.0.1:1", "--interval", "0"), "interval must be between"),
        (("--redis", "redis://127.0.0.1:1", "--disk-path", "/no/such/dir"), "does not exist"),
    ],
)
def test_agent_cli_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    out = run_cli("agent", *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_agent_cli_without_a_url_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLUSTERNB_REDIS_URL", raising=False)
    out = run_cli("agent")
    assert out.returncode == 2 and "--redis URL or set CLUSTERNB_REDIS_URL" in out.stderr


def test_agent_help_lists_its_options() -> None:
    out = run_cli("agent", "--help")
    for option in ("--redis", "--name", "--interval", "--label", "--disk-path", "SIGTERM"):
        assert option in out.stdout
    assert "agent" in run_cli("--help").stdout and "demo" in run_cli("--help").stdout
