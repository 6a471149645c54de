"""Cluster mode end to end: a real redis-server, three agent processes, and this process reading workers()
and alerts() through the query API, while agents are killed, restarted and stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import orjson
import pandas as pd
import pytest

from clusternb.config import load_config
from clusternb.demo import Demo
from clusternb.queries import Client

INTERVAL = 0.5
ALWAYS = [{"name": "busy", "metric": "mem_used_percent", "op": ">", "threshold": 0, "for": 0}]


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    # Agents inherit the environment: a rule every node breaks, so each agent fires its own alert.
    monkeypatch.setenv("CLUSTERNB_ALERT_RULES", orjson.dumps(ALWAYS).decode())
    with Demo(n_agents=3, interval=INTERVAL) as d:
        assert d.wait_ready(60), "agents did not publish"
        yield d


@pytest.fixture
def client(demo: Demo) -> Iterator[Client]:
    with Client(load_config(redis_url=demo.url, interval=INTERVAL), sample_local=False) as c:
        yield c


def wait_until(check: Callable[[], bool], seconds: float = 30.0) -> bool:
    """Poll ``check``; a generous deadline, not a timing assertion (the thresholds decide the timing)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def statuses(c: Client) -> dict[str, str]:
    return {str(k): str(v) for k, v in c.workers()["status"].items()}


def test_kill_restart_and_stop_agents(demo: Demo, client: Client) -> None:
    names = sorted(demo.agents)
    assert wait_until(lambda: statuses(client) == dict.fromkeys(names, "online"))
    victim, leaver = names[0], names[1]

    demo.kill(victim)  # SIGKILL: no goodbye
    assert wait_until(lambda: statuses(client)[victim] == "offline")
    row = client.workers().loc[victim]
    assert row["age_s"] > 3 * INTERVAL  # offline exactly when silent for more than 3 of its intervals
    assert statuses(client)[names[2]] == "online"

    demo.start(victim)
    assert wait_until(lambda: statuses(client)[victim] == "online")

    demo.stop(leaver)  # SIGTERM: records a clean departure
    assert wait_until(lambda: statuses(client)[leaver] == "left")
    status = client.cluster_status().iloc[0]
    assert status["nodes_left"] == 1 and status["nodes_online"] == 2


def test_garbage_and_foreign_versions_are_skipped(demo: Demo, client: Client) -> None:
    raw = client.store.primary.link.client()  # type: ignore[attr-defined]
    prefix = client.store.primary.prefix  # type: ignore[attr-defined]
    raw.hset(prefix + "latest", "garbage-node", b"\x80\x04not json at all")
    future = {"schema": 99, "node": "future-node"}
    raw.hset(prefix + "latest", "future-node", orjson.dumps(future))
    workers = client.workers()
    assert sorted(workers.index) == sorted(demo.agents)
    assert client.store.primary.skipped >= 2  # type: ignore[attr-defined]


def test_one_alert_per_rule_and_node_and_node_offline(demo: Demo, client: Client) -> None:
    names = sorted(demo.agents)

    def busy_alerts() -> pd.DataFrame:
        df = client.alerts()
        return df[df["rule"] == "busy"]

    assert wait_until(lambda: sorted(busy_alerts()["node"]) == names)
    time.sleep(5 * INTERVAL)  # many more samples, each re-evaluating the rule on every agent
    busy = busy_alerts()
    assert sorted(busy["alert_id"]) == [f"busy:{n}" for n in names]  # still exactly one per node
    assert (busy["state"] == "firing").all()

    victim = names[2]
    demo.kill(victim)

    def offline_ids() -> list[str]:
        df = client.alerts()
        return list(df[(df["rule"] == "node_offline") & (df["state"] == "firing")]["alert_id"])

    assert wait_until(lambda: offline_ids() == [f"node_offline:{victim}"])
    assert client.cluster_status().loc[0, "health"] == "critical"

    demo.start(victim)
    assert wait_until(lambda: offline_ids() == [])
    history = client.alerts(active=False)
    resolved = history[(history["rule"] == "node_offline") & (history["state"] == "resolved")]
    assert list(resolved["node"]) == [victim]
