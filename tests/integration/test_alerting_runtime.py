"""Alerts evaluated where samples are made, visible through alerts() and cluster_status(); rule files reload."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from clusternb.alerting.runtime import AlertRuntime
from clusternb.alerting.store import RedisAlertStore
from clusternb.config import load_config
from clusternb.queries import Client
from clusternb.state.memory import MemoryStateStore
from clusternb.state.redis import RedisStateStore
from tests.helpers import make_snapshot
from tests.redis_server import RedisServer

HOT = [{"name": "cpu", "threshold": 50, "clear": 40, "for": 0}]


def _client(**settings: object) -> Client:
    return Client(load_config(interval=3600, **settings), store=MemoryStateStore(), sample_local=False)  # type: ignore[arg-type]


def _sample(client: Client, **fields: object) -> None:
    snap = make_snapshot("n1", time=time.time(), interval_s=3600, **fields)
    client.store.put(snap)
    client.after_sample(snap)


def test_a_crossed_rule_fires_once_and_degrades_health() -> None:
    with _client(alert_rules=HOT) as c:
        _sample(c, cpu_percent=10.0)
        assert c.alerts().empty and c.cluster_status().loc[0, "health"] == "healthy"
        for _ in range(3):
            _sample(c, cpu_percent=90.0)
        active = c.alerts()
        assert list(active["alert_id"]) == ["cpu:n1"]
        assert active.loc[0, "state"] == "firing" and active.loc[0, "value"] == 90.0
        status = c.cluster_status().iloc[0]
        assert status["health"] == "degraded" and status["alerts_firing"] == 1

        c.acknowledge("cpu:n1", by="sre")
        assert bool(c.alerts().loc[0, "acknowledged"])
        with pytest.raises(ValueError, match="alert_id"):
            c.acknowledge("nope:n1")

        _sample(c, cpu_percent=45.0)  # between clear and threshold: still firing (hysteresis)
        assert c.alerts().loc[0, "state"] == "firing"
        _sample(c, cpu_percent=30.0)
        assert c.alerts().empty
        history = c.alerts(active=False)
        assert list(history["state"]) == ["resolved"] and c.cluster_status().loc[0, "health"] == "healthy"


def test_critical_alert_makes_health_critical() -> None:
    with _client(alert_rules=[{"name": "cpu", "threshold": 50, "for": 0, "severity": "critical"}]) as c:
        _sample(c, cpu_percent=99.0)
        assert c.cluster_status().loc[0, "health"] == "critical"
        assert len(c.alerts(severity="critical")) == 1 and c.alerts(severity="info").empty


def test_bad_rules_at_startup_are_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("- name: cpu\n  op: '=>'\n")
    with pytest.raises(ValueError, match=r"alert rules: rule 'cpu'.*'=>'"):
        _client(alert_rules_file=str(bad))


def test_a_bad_rule_file_keeps_the_previous_rules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("- name: cpu\n  threshold: 50\n  clear: 40\n  for: 0\n")
    with _client(alert_rules_file=str(path)) as c:
        _sample(c, cpu_percent=60.0)
        assert list(c.alerts()["alert_id"]) == ["cpu:n1"]
        path.write_text("- name: cpu\n  threshold: banana\n")
        os.utime(path, (time.time() + 5, time.time() + 5))  # a new modification time, whatever the clock
        caplog.set_level(logging.ERROR, logger="clusternb")
        for _ in range(3):
            _sample(c, cpu_percent=60.0)
        errors = [r for r in caplog.records if "previous rules stay active" in r.getMessage()]
        assert len(errors) == 1 and "cpu" in errors[0].getMessage()
        assert c.alerting.engine.rules  # unchanged
        assert list(c.alerts()["alert_id"]) == ["cpu:n1"]  # the old rule still holds the alert

        path.write_text("- name: cpu\n  threshold: 95\n  for: 0\n")
        os.utime(path, (time.time() + 10, time.time() + 10))
        _sample(c, cpu_percent=60.0)  # the fixed file is picked up: 60 < 95 resolves the alert
        assert c.alerts().empty and c.alerting.last_reload_error is None


def test_silent_node_raises_node_offline_in_embedded_mode() -> None:
    with _client() as c:
        old = make_snapshot("gone", time=time.time() - 100_000, interval_s=1.0)
        c.store.put(old)
        _sample(c, cpu_percent=1.0)
        offline = c.alerts()
        assert list(offline["alert_id"]) == ["node_offline:gone"]
        assert offline.loc[0, "severity"] == "critical"


@pytest.mark.redis
def test_one_liveness_watcher_per_lease_and_a_lone_one_checks_every_interval(redis_server: RedisServer) -> None:
    settings = load_config(redis_url=redis_server.url, interval=2.0)
    state = RedisStateStore.from_settings(settings)
    first, second = (AlertRuntime(settings, store=RedisAlertStore(state.link, state=state)) for _ in range(2))
    first.owner, second.owner = "first", "second"
    now = time.time()
    state.put(make_snapshot("n1", time=now, interval_s=2.0))

    assert first.check_liveness(state, settings.thresholds, now, 2.0) == []  # holds the lease; n1 is online
    assert second.check_liveness(state, settings.thresholds, now + 60, 2.0) == []  # n1 silent, but not its turn
    time.sleep(1.95)  # its next check, due one interval after the last, can come a few ms early: no lease left
    raised = first.check_liveness(state, settings.thresholds, now + 60, 2.0)
    assert [(t.kind, t.alert.alert_id) for t in raised] == [("fired", "node_offline:n1")]
    assert [a.alert_id for a in second.records()] == ["node_offline:n1"]  # shared through Redis
    state.close()


@pytest.mark.redis
def test_the_watcher_asks_redis_only_when_a_check_could_find_something(redis_server: RedisServer) -> None:
    settings = load_config(redis_url=redis_server.url, interval=1.0)
    limits = settings.thresholds
    state = RedisStateStore.from_settings(settings)
    watcher, other = (AlertRuntime(settings, store=RedisAlertStore(state.link, state=state)) for _ in range(2))
    watcher.owner, other.owner = "watcher", "other"
    raw = redis_server.client()
    lease_key = RedisAlertStore(raw).watchdog_key

    def script_calls() -> int:
        return int(raw.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    now = time.time()
    state.put(make_snapshot("n1", time=now, interval_s=1.0))  # online; it can go offline at now + 3 at the earliest
    assert watcher.check_liveness(state, limits, now, 1.0) == []  # checks and holds the lease
    before = script_calls()
    assert other.check_liveness(state, limits, now, 1.0) == []  # the lease is held: told for how long ...
    assert other.check_liveness(state, limits, now + 0.5, 1.0) == []  # ... so it does not ask again meanwhile
    raw.delete(lease_key)  # the lease ends
    assert watcher.check_liveness(state, limits, now + 2.0, 1.0) == []  # nothing can have changed before now + 3
    assert script_calls() - before == 1

    raised = watcher.check_liveness(state, limits, now + 3.5, 1.0)
    assert [(t.kind, t.alert.alert_id) for t in raised] == [("fired", "node_offline:n1")]
    # While the alert is active, every offer is a check, so the node's return resolves it at once.
    state.put(make_snapshot("n1", time=now + 3.6, interval_s=1.0))
    raw.delete(lease_key)
    resolved = watcher.check_liveness(state, limits, now + 3.7, 1.0)
    assert [(t.kind, t.alert.alert_id) for t in resolved] == [("resolved", "node_offline:n1")]
    state.close()


@pytest.mark.redis
def test_a_lease_key_without_expiry_does_not_stop_the_watch_for_good(redis_server: RedisServer) -> None:
    settings = load_config(redis_url=redis_server.url, interval=1.0)
    state = RedisStateStore.from_settings(settings)
    runtime = AlertRuntime(settings, store=RedisAlertStore(state.link, state=state))
    raw = redis_server.client()
    lease_key = RedisAlertStore(raw).watchdog_key
    raw.set(lease_key, "left by something else")  # no expiry
    assert runtime.check_liveness(state, settings.thresholds, time.time(), 1.0) == []
    assert 0 < raw.pttl(lease_key) <= 900  # given the lease's length, so it ends like any lease
    state.close()


@pytest.mark.redis
def test_a_slow_sampler_does_not_hold_the_watch_over_faster_nodes(redis_server: RedisServer) -> None:
    settings = load_config(redis_url=redis_server.url, interval=60.0)  # e.g. a server sampling every minute
    state = RedisStateStore.from_settings(settings)
    runtime = AlertRuntime(settings, store=RedisAlertStore(state.link, state=state))
    raw = redis_server.client()
    lease_key = RedisAlertStore(raw).watchdog_key
    now = time.time()
    state.put(make_snapshot("fast", time=now, interval_s=1.0))
    runtime.check_liveness(state, settings.thresholds, now, 60.0)
    assert 0 < raw.pttl(lease_key) <= 900  # cut to 0.9 of the fastest node's interval once it saw that node
    raw.delete(lease_key)
    runtime.check_liveness(state, settings.thresholds, now + 3.5, 60.0)  # 'fast' went silent: a check is due
    assert 0 < raw.pttl(lease_key) <= 900  # and taken that short from the start
    state.close()
