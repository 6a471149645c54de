"""Alerting core: rule loading and validation, the pending -> firing -> resolved lifecycle, records and frames.

The clock is a plain float passed to every call, so durations are exact and nothing here sleeps.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pandas as pd
import pytest

from clusternb import frames
from clusternb.alerting import (
    ALERT_SCHEMA_VERSION,
    DEFAULT_RULES,
    METRICS,
    Alert,
    AlertEngine,
    Rule,
    RuleError,
    SchemaError,
    Transition,
    alerts_frame,
    load_rules,
    metric_value,
    parse_duration,
)
from clusternb.alerting import rules as rules_module
from clusternb.model import NodeSnapshot
from tests.helpers import make_gpu, make_snapshot

T0 = 1_700_000_000.0
CPU = Rule("cpu", "cpu_percent", ">", 90, for_s=60, clear=80, severity="warning")


def _cpu(engine: AlertEngine, value: float, at: float, node: str = "n1") -> list[Transition]:
    return engine.evaluate(make_snapshot(node, time=at, cpu_percent=value), now=at)


def _run(engine: AlertEngine, values: list[float], start: float = T0, step: float = 10.0) -> list[Transition]:
    """Feed one CPU value per ``step`` seconds; return every transition in order."""
    out: list[Transition] = []
    for i, value in enumerate(values):
        out += _cpu(engine, value, start + i * step)
    return out


def _kinds(transitions: list[Transition]) -> Counter[str]:
    return Counter(t.kind for t in transitions)


# -- lifecycle --------------------------------------------------------------------------------------------


def test_condition_held_shorter_than_for_never_fires_and_leaves_no_history() -> None:
    engine = AlertEngine([CPU])
    transitions = _run(engine, [95, 95, 95, 95, 95, 50, 50])  # holds 40 s < 60 s, then drops
    assert [t.kind for t in transitions] == ["pending", "dropped"]  # a repeated value is not an update
    assert transitions[-1].alert.state == "pending" and transitions[-1].alert.started_at == T0
    assert engine.active() == [] and engine.history() == []
    assert len(alerts_frame(engine.alerts())) == 0


def test_condition_held_longer_than_for_fires_exactly_once() -> None:
    engine = AlertEngine([CPU])
    transitions = _run(engine, [95.0 + i % 4 for i in range(30)])  # 290 s above the threshold
    fired = [t for t in transitions if t.kind == "fired"]
    assert len(fired) == 1
    alert = fired[0].alert
    assert (alert.state, alert.started_at, alert.fired_at, alert.ended_at) == ("firing", T0, T0 + 60, None)
    assert alert.value == 97.0  # not the first value (95): the value of the sample that made it fire
    assert len(engine.active()) == 1 and engine.active()[0].alert_id == "cpu:n1"
    assert engine.active()[0].last_value == 96.0
    assert {t.kind for t in transitions} <= {"pending", "fired", "updated"}


def test_value_oscillating_between_clear_and_threshold_does_not_flap() -> None:
    engine = AlertEngine([CPU])
    _run(engine, [95] * 7)  # fires at T0 + 60
    transitions = _run(engine, [85, 95, 82, 91, 81, 99, 85], start=T0 + 70)
    assert {t.kind for t in transitions} == {"updated"}
    (alert,) = engine.active()
    assert alert.state == "firing" and alert.started_at == T0 and alert.fired_at == T0 + 60


def test_resolves_only_after_crossing_the_clear_threshold() -> None:
    engine = AlertEngine([CPU])
    _run(engine, [95] * 7)
    assert _kinds(_cpu(engine, 80.5, T0 + 100)) == Counter(updated=1)  # below threshold, above clear
    (resolved,) = _cpu(engine, 79.0, T0 + 110)
    assert resolved.kind == "resolved"
    alert = resolved.alert
    assert (alert.state, alert.ended_at, alert.value, alert.last_value) == ("resolved", T0 + 110, 95.0, 79.0)
    assert engine.active() == [] and engine.history() == [alert]
    # Above the threshold again: a new alert that has to wait out `for` again.
    assert [t.kind for t in _cpu(engine, 96.0, T0 + 200)] == ["pending"]
    new = engine.get("cpu:n1")
    assert new is not None and new.started_at == T0 + 200 and len(engine.history()) == 1


def test_clear_defaults_to_threshold_and_below_rules_mirror_above_rules() -> None:
    low = Rule("uptime", "uptime_s", "<", 300, clear=600, severity="info")  # "node rebooted recently"
    engine = AlertEngine([low])
    assert Rule("x", "load_1", ">", 4).clear == 4.0
    fire = engine.evaluate(make_snapshot(uptime_s=10.0), T0)
    assert [t.kind for t in fire] == ["fired"]  # for 0: fires on the first sample
    assert engine.evaluate(make_snapshot(uptime_s=400.0), T0 + 1)[0].kind == "updated"
    assert engine.evaluate(make_snapshot(uptime_s=700.0), T0 + 2)[0].kind == "resolved"


def test_acknowledge_survives_updates_until_resolution_and_not_into_the_next_alert() -> None:
    engine = AlertEngine([CPU])
    _run(engine, [95] * 7)
    ack = engine.acknowledge("cpu:n1", by="alice", now=T0 + 65)
    assert ack.kind == "acknowledged" and ack.alert.acknowledged and ack.alert.acknowledged_by == "alice"
    _run(engine, [97, 85, 99], start=T0 + 70)
    assert engine.active()[0].acknowledged and engine.active()[0].acknowledged_at == T0 + 65
    resolved = _cpu(engine, 10.0, T0 + 100)[0].alert
    assert resolved.acknowledged  # history remembers it was acknowledged
    _run(engine, [95] * 7, start=T0 + 200)
    (again,) = engine.active()
    assert again.state == "firing" and not again.acknowledged and again.acknowledged_by is None
    with pytest.raises(KeyError, match="memory:n1"):
        engine.acknowledge("memory:n1")


def test_one_alert_per_rule_and_node() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    full = {"mem_used_bytes": int(16 * 2**30 * 0.99), "mem_available_bytes": 2**20}
    for i in range(20):  # 190 s at 99 % memory on two nodes
        for node in ("n1", "n2"):
            engine.evaluate(make_snapshot(node, time=T0 + 10 * i, **full), T0 + 10 * i)
    ids = sorted(a.alert_id for a in engine.active())
    assert ids == ["memory:n1", "memory:n2", "memory_critical:n1", "memory_critical:n2"]
    assert {a.severity for a in engine.active() if a.rule == "memory_critical"} == {"critical"}
    assert all(a.state == "firing" for a in engine.active())


def test_gpu_metrics_and_missing_data() -> None:
    hot = make_snapshot(gpus=(make_gpu(0, temperature_c=70.0, util_percent=20.0), make_gpu(1, temperature_c=90.0)))
    assert metric_value(hot, "gpu_temperature_c") == 90.0  # the hottest card
    assert metric_value(hot, "gpu_util_percent") == 35.0  # the mean
    assert metric_value(hot, "gpu_mem_used_percent") == 25.0
    assert metric_value(make_snapshot(), "gpu_temperature_c") is None
    assert metric_value(make_snapshot(), "mem_used_percent") == 25.0
    engine = AlertEngine([r for r in DEFAULT_RULES if r.name == "gpu_temperature"])
    assert engine.evaluate(make_snapshot(), T0) == []  # no GPU, no alert
    engine.evaluate(hot, T0)
    assert engine.evaluate(hot, T0 + 60)[0].kind == "fired"
    # The card stops reporting: a firing alert about a value nobody reports any more resolves.
    assert engine.evaluate(make_snapshot(), T0 + 70)[0].kind == "resolved"


def test_node_offline_fires_and_resolves_when_the_node_is_back() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    fired = engine.evaluate_offline("n3", silence_s=12.0, now=T0)
    assert [(t.kind, t.alert.alert_id, t.alert.severity) for t in fired] == [("fired", "node_offline:n3", "critical")]
    assert "12s" in fired[0].alert.message
    assert [t.kind for t in engine.evaluate_offline("n3", 22.0, T0 + 10)] == ["updated"]
    assert len(engine.active()) == 1
    (back,) = engine.node_back("n3", T0 + 30)
    assert back.kind == "resolved" and back.alert.ended_at == T0 + 30 and back.alert.last_value == 22.0
    assert engine.node_back("n3", T0 + 40) == []
    # A rule that waits: the node returning before `for` leaves no trace.
    patient = AlertEngine([Rule("offline_5m", "node_offline", ">", 0, for_s=300, severity="critical")])
    assert [t.kind for t in patient.evaluate_offline("n3", 10.0, T0)] == ["pending"]
    assert [t.kind for t in patient.node_back("n3", T0 + 100)] == ["dropped"]
    assert patient.alerts() == []


def test_service_down_is_keyed_by_service_and_waits_its_duration() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    assert [t.kind for t in engine.evaluate_service("redis", up=False, now=T0)] == ["pending"]
    assert engine.evaluate_service("redis", up=False, now=T0 + 29) == []  # same value, not yet 30 s
    (fired,) = engine.evaluate_service("redis", up=False, now=T0 + 30)
    assert (fired.kind, fired.alert.alert_id, fired.alert.node) == ("fired", "service_down:redis", "redis")
    assert fired.alert.message == "service redis is down"
    assert engine.evaluate(make_snapshot("redis"), T0 + 31) == []  # node rules never touch service alerts
    assert [t.kind for t in engine.evaluate_service("redis", up=True, now=T0 + 40)] == ["resolved"]
    assert [t.kind for t in engine.evaluate_service("db", up=False, now=T0)] == ["pending"]
    assert [t.kind for t in engine.evaluate_service("db", up=True, now=T0 + 5)] == ["dropped"]


def test_history_is_bounded_and_forget_node_ends_everything_about_a_node() -> None:
    engine = AlertEngine([Rule("busy", "cpu_percent", ">", 90)], history=2)
    for i, node in enumerate(["a", "b", "c"]):
        _cpu(engine, 99, T0 + i, node)
        _cpu(engine, 1, T0 + 10 + i, node)
    assert [a.node for a in engine.history()] == ["b", "c"]
    _cpu(engine, 99, T0 + 20, "d")
    engine.evaluate_offline("d", 30.0, T0 + 21)  # no node_offline rule here: nothing happens
    assert [(t.kind, t.alert.node) for t in engine.forget_node("d", T0 + 22)] == [("resolved", "d")]
    assert engine.active() == []
    with pytest.raises(ValueError, match="history"):
        AlertEngine(history=-1)


def test_replace_rules_ends_alerts_of_removed_or_disabled_rules_and_updates_the_rest() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    snap = make_snapshot(cpu_percent=99.0, disk_used_bytes=99 * 2**30)
    engine.evaluate(snap, T0)  # disk_critical fires at once, cpu and disk go pending
    assert {a.alert_id: a.state for a in engine.active()} == {
        "cpu:n1": "pending", "disk:n1": "pending", "disk_critical:n1": "firing",
    }  # fmt: skip
    new = load_rules(overrides=[{"name": "cpu", "enabled": False}, {"name": "disk_critical", "severity": "info"}])
    new = [r for r in new if r.name != "disk"]
    kinds = {t.alert.alert_id: t.kind for t in engine.replace_rules(new, T0 + 5)}
    assert kinds == {"cpu:n1": "dropped", "disk:n1": "dropped", "disk_critical:n1": "updated"}
    (left,) = engine.active()
    assert left.alert_id == "disk_critical:n1" and left.severity == "info" and left.state == "firing"
    assert engine.replace_rules([], T0 + 6)[0].kind == "resolved"
    with pytest.raises(RuleError, match=r"'cpu'.*duplicate"):
        engine.replace_rules([CPU, CPU], T0 + 7)
    assert engine.rules == ()


def test_bad_rules_file_leaves_the_running_rules_intact(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("- {name: cpu, threshold: 50, for: 0}\n")
    engine = AlertEngine(load_rules(path=path))
    _cpu(engine, 60, T0)
    before = (engine.rules, engine.active())
    path.write_text("- {name: cpu, threshold: 50, op: '=>'}\n")
    with pytest.raises(RuleError, match=r"'cpu' in .*rules\.yaml.*op"):
        engine.replace_rules(load_rules(path=path), T0 + 1)
    assert (engine.rules, engine.active()) == before
    assert next(r for r in engine.rules if r.name == "cpu").threshold == 50.0


def test_restore_adopts_persisted_alerts() -> None:
    first = AlertEngine([CPU])
    _run(first, [95] * 7)
    first.evaluate(make_snapshot("n2", cpu_percent=99.0), T0)
    first.evaluate(make_snapshot("n2", cpu_percent=99.0), T0 + 60)
    first.evaluate(make_snapshot("n2", cpu_percent=1.0), T0 + 70)
    records = [Alert.from_dict(orjson.loads(orjson.dumps(a.to_dict()))) for a in first.alerts()]
    second = AlertEngine([CPU])
    orphan = Alert.from_dict({**records[0].to_dict(), "rule": "gone", "alert_id": "gone:n1"})
    assert second.restore([*records, orphan]) == 2  # one firing, one resolved; the orphan's rule is gone
    assert second.active() == first.active() and second.history() == first.history()
    # The restored alert keeps going: still firing, no second "fired".
    assert [t.kind for t in _cpu(second, 99, T0 + 80)] == ["updated"]


# -- rules and their loading ----------------------------------------------------------------------------


def test_defaults_are_valid_and_documented() -> None:
    names = [r.name for r in DEFAULT_RULES]
    assert len(set(names)) == len(names)
    table = {line.split()[0]: line for line in (rules_module.__doc__ or "").splitlines() if line.strip()}
    for rule in DEFAULT_RULES:  # the docstring table says what the code does
        line = table[rule.name]
        duration = "0" if not rule.for_s else f"{rule.for_s / 60:g}m" if rule.for_s % 60 == 0 else f"{rule.for_s:g}s"
        assert line.split()[1] == rule.metric and f" {rule.op} {rule.threshold:g} " in line, line
        assert f" {duration} " in line and f" {rule.clear_at:g} " in line and f" {rule.severity} " in line, line
    cpu = next(r for r in DEFAULT_RULES if r.name == "cpu")
    assert (cpu.threshold, cpu.for_s, cpu.clear, cpu.severity) == (90.0, 300.0, 80.0, "warning")
    assert "n7" in cpu.render("n7", 93.2) and "93%" in cpu.render("n7", 93.2)


@pytest.mark.parametrize(
    ("text", "seconds"), [(30, 30.0), (2.5, 2.5), ("90", 90.0), ("30s", 30.0), ("2m", 120.0), ("1h30m", 5400.0)]
)
def test_parse_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_load_rules_from_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_path = tmp_path / "rules.yml"
    yaml_path.write_text(
        "rules:\n"
        "  - name: cpu\n    threshold: 95\n    for: 10m\n"
        "  - name: swap\n    enabled: false\n"
        "  - name: scratch\n    metric: disk_used_percent\n    op: '>'\n    threshold: 80\n"
        "    severity: info\n    message: '{node}: scratch at {value:.0f}%'\n"
    )
    rules = {r.name: r for r in load_rules(path=yaml_path)}
    assert set(rules) == {r.name for r in DEFAULT_RULES} | {"scratch"}
    assert (rules["cpu"].threshold, rules["cpu"].for_s, rules["cpu"].clear) == (95.0, 600.0, 95.0)
    assert rules["cpu"].severity == "warning"  # what the entry did not give is inherited
    assert not rules["swap"].enabled and rules["swap"].threshold == 50.0
    assert rules["scratch"].render("n1", 81.4) == "n1: scratch at 81%"

    json_path = tmp_path / "rules.json"
    json_path.write_text(json.dumps([{"name": "load", "metric": "load_1", "op": ">=", "threshold": 8, "for_s": 30}]))
    only = load_rules(defaults=False, path=json_path)
    assert [(r.name, r.op, r.threshold, r.for_s) for r in only] == [("load", ">=", 8.0, 30.0)]

    # The config list applies over the file.
    over = {r.name: r for r in load_rules(path=yaml_path, overrides=[{"name": "cpu", "threshold": 99, "clear": 90}])}
    assert (over["cpu"].threshold, over["cpu"].clear, over["cpu"].for_s) == (99.0, 90.0, 600.0)
    (tmp_path / "empty.yaml").write_text("")
    assert load_rules(path=tmp_path / "empty.yaml") == list(DEFAULT_RULES)


def test_disabled_rules_are_not_evaluated() -> None:
    engine = AlertEngine(load_rules(overrides=[{"name": "disk_critical", "enabled": False}]))
    assert [t.alert.rule for t in engine.evaluate(make_snapshot(disk_used_bytes=99 * 2**30), T0)] == ["disk"]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"metric": "cpu_percentage"}, r"unknown metric 'cpu_percentage'; allowed: .*cpu_percent.*mem_used_percent"),
        ({"op": "=>"}, r"unknown op '=>'"),
        ({"op": ["<"]}, r"unknown op"),
        ({"threshold": 90, "clear": 95}, r"clear 95 is on the wrong side of threshold 90"),
        ({"op": "<", "threshold": 10, "clear": 5}, r"needs clear >= threshold"),
        ({"for": "5 fortnights"}, r"bad duration"),
        ({"for": -5}, r"bad duration"),
        ({"severity": "fatal"}, r"unknown severity 'fatal'"),
        ({"threshold": "90%"}, r"threshold must be a finite number"),
        ({"message": "{node} is {status}"}, r"unknown placeholder\(s\) \['status'\]"),
        ({"message": "{value:d}"}, r"does not render"),
        ({"message": "{node"}, r"not a valid template"),
        ({"treshold": 3}, r"unknown key\(s\) \['treshold'\]"),
        ({"for": "1m", "for_s": 60}, r"not both"),
        ({"enabled": "no"}, r"enabled must be true or false"),
    ],
)
def test_invalid_rule_in_a_file_names_the_rule_the_file_and_the_problem(
    tmp_path: Path, entry: dict[str, Any], problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps({"rules": [{"name": "cpu", **entry}]}))  # JSON is YAML too
    with pytest.raises(RuleError, match=rf"rule 'cpu' in .*bad\.yaml: .*{problem}") as caught:
        load_rules(path=path)
    assert caught.value.rule == "cpu" and caught.value.source == str(path)


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ([{"name": "hot", "metric": "cpu_percent"}], r"rule 'hot' in alert_rules: .*needs op, threshold"),
        ([{"name": "cpuu", "enabled": False}], r"rule 'cpuu' in alert_rules: no rule of this name"),
        ([{"name": "a b", "metric": "load_1", "op": ">", "threshold": 1}], r"rule 'a b'.*name must be"),
        ([{"metric": "load_1"}], r"entry #1 has no 'name'"),
        (["cpu"], r"entry #1 must be a mapping"),
        ([{"name": "cpu", "threshold": 1}, {"name": "cpu", "threshold": 2}], r"rule 'cpu'.*duplicate name"),
    ],
)
def test_invalid_override_entries(entries: list[Any], match: str) -> None:
    with pytest.raises(RuleError, match=match):
        load_rules(overrides=entries)


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("dup.yaml", "- {name: x, metric: load_1, op: '>', threshold: 1}\n" * 2, r"rule 'x' in .*dup\.yaml: duplicate"),
        ("syntax.yaml", "rules: [\n", r"rules in .*syntax\.yaml: not valid YAML"),
        ("syntax.json", "[{", r"not valid JSON"),
        ("scalar.yaml", "42\n", r"expected a list of rules"),
        ("extra.yaml", "rules: []\nalerts: []\n", r"unknown top-level key\(s\) \['alerts'\]"),
        ("code.yaml", "!!python/object/apply:os.system ['true']\n", r"not valid YAML"),
    ],
)
def test_bad_rules_files(tmp_path: Path, name: str, text: str, match: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(RuleError, match=match):
        load_rules(path=tmp_path / name)
    with pytest.raises(RuleError, match="cannot read"):
        load_rules(path=tmp_path / "missing.yaml")


def test_every_allowed_metric_can_be_read_or_is_fed_by_its_own_entry_point() -> None:
    given = {"gpus": (make_gpu(),), "cpu_limit": 2.0, "mem_limit_bytes": 2**33, "mem_cgroup_used_bytes": 2**32}
    # Every other field a source may leave out gets a value too, so a new optional metric is covered unasked.
    optional = {f.name: 4 for f in msgspec.structs.fields(NodeSnapshot) if f.default is None and f.name not in given}
    snap = make_snapshot(**given, **optional)
    for metric in METRICS:
        if metric in ("node_offline", "service_down", "kernel_memory_percent"):  # fed by their own entry points
            continue
        assert isinstance(metric_value(snap, metric), float), metric


# -- records and frames ---------------------------------------------------------------------------------


def _firing_alert(**changes: Any) -> Alert:
    engine = AlertEngine([Rule("busy", "cpu_percent", ">", 90, severity="critical")])
    _cpu(engine, 97.25, T0 + 0.123456)
    alert = engine.acknowledge("busy:n1", by="bob", now=T0 + 1).alert
    return Alert.from_dict({**alert.to_dict(), **changes}) if changes else alert


def test_alert_round_trips_through_json() -> None:
    alert = _firing_alert()
    data = orjson.loads(orjson.dumps(alert.to_dict()))
    assert data["alert_id"] == "busy:n1" and data["schema"] == ALERT_SCHEMA_VERSION
    assert Alert.from_dict(data) == alert
    whole = Alert.from_dict({**data, "value": 97, "last_value": 97})  # JSON integers come back as floats
    assert isinstance(whole.value, float)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"schema": ALERT_SCHEMA_VERSION + 1}, "schema"),
        ({"schema": None}, "schema"),
        ({"evil": "__import__('os')"}, "unknown"),
        ({"value": "97"}, "'value'"),
        ({"value": True}, "'value'"),
        ({"started_at": float("inf")}, "finite"),
        ({"acknowledged": 1}, "'acknowledged'"),
        ({"state": "exploded"}, "state"),
        ({"severity": "fatal"}, "severity"),
        ({"fired_at": None}, "firing alert"),
        ({"state": "pending"}, "pending alert"),
        ({"state": "resolved"}, "resolved alert"),
        ({"alert_id": "other:n1"}, "alert_id"),
        ({"rule": "a:b", "alert_id": "a:b:n1"}, "':'"),
        ({"node": ""}, "empty"),
        ({"started_at": 1e300}, "between 1970 and 2100"),
        ({"started_at": -1e10}, "between 1970 and 2100"),
        ({"fired_at": 32_503_680_000.0}, "between 1970 and 2100"),  # the year 3000
        ({"value": 1e308}, "beyond what any metric reaches"),
        ({"threshold": -1e300}, "beyond what any metric reaches"),
        ({"message": "x" * 100_000}, "longer than 1024"),
        ({"node": "n" * 10_000, "alert_id": "cpu:" + "n" * 10_000}, "longer than 256"),
    ],
)
def test_foreign_or_corrupt_alert_records_raise_schema_error(change: dict[str, Any], match: str) -> None:
    data = _firing_alert().to_dict()
    data.update(change)
    with pytest.raises(SchemaError, match=match):
        Alert.from_dict(data)
    missing = _firing_alert().to_dict()
    del missing["message"]
    with pytest.raises(SchemaError, match="missing"):
        Alert.from_dict(missing)
    with pytest.raises(SchemaError, match="mapping"):
        Alert.from_dict([1, 2])  # type: ignore[arg-type]
    assert issubclass(SchemaError, ValueError)


def _assert_alert_schema(df: pd.DataFrame) -> None:
    assert list(df.columns) == [c.name for c in frames.ALERT_COLUMNS]
    for col in frames.ALERT_COLUMNS:
        assert df[col.name].dtype == pd.api.types.pandas_dtype(col.dtype), col.name


def test_alerts_frame_schema_order_and_filters() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    engine.evaluate(make_snapshot("a", disk_used_bytes=99 * 2**30), T0)  # disk_critical firing, disk pending
    engine.evaluate_offline("b", 40.0, T0 + 10)
    engine.evaluate_service("redis", up=False, now=T0 + 20)
    engine.evaluate_service("redis", up=False, now=T0 + 50)
    engine.evaluate_service("redis", up=True, now=T0 + 60)  # resolved
    engine.acknowledge("node_offline:b")

    df = alerts_frame(engine.alerts())
    _assert_alert_schema(df)
    assert list(df["alert_id"]) == ["service_down:redis", "node_offline:b", "disk:a", "disk_critical:a"]
    assert list(df["state"]) == ["resolved", "firing", "pending", "firing"]
    assert df["severity"].cat.ordered and df["state"].cat.ordered
    row = df.set_index("alert_id").loc["service_down:redis"]
    assert row["started_at"] == pd.Timestamp(T0 + 20, unit="s", tz="UTC")
    assert row["ended_at"] == pd.Timestamp(T0 + 60, unit="s", tz="UTC")
    assert df.set_index("alert_id")["fired_at"].isna().to_dict()["disk:a"]
    assert list(df["acknowledged"]) == [False, True, False, False]

    assert "service_down:redis" not in set(alerts_frame(engine.alerts(), active=True)["alert_id"])
    assert list(alerts_frame(engine.alerts(), severity="warning")["alert_id"]) == ["disk:a"]
    assert list(alerts_frame(engine.alerts(), node="b")["alert_id"]) == ["node_offline:b"]
    assert len(alerts_frame(engine.alerts(), since=T0 + 61)) == 3  # the resolved one ended before
    assert len(alerts_frame(engine.alerts(), since=T0 + 60)) == 4
    _assert_alert_schema(alerts_frame([]))
    with pytest.raises(ValueError, match="severity"):
        alerts_frame([], severity="fatal")
