"""Alert rule files and messages under hostile input, and messages that claim only time that has passed.

Every hostile file is refused with one one-line RuleError (a ValueError) naming the file, never a parser's
RecursionError, AttributeError or MemoryError; templates may only fill in plain fields; a message rendered for
a pending alert says how long its condition has actually held.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clusternb.alerting import DEFAULT_RULES, Alert, AlertEngine, Rule, RuleError, load_rules
from clusternb.alerting.parsing import RULES_FILE_MAX_BYTES, RULES_MAX, VALUES_MAX
from clusternb.alerting.templates import duration
from tests.helpers import make_snapshot

T0 = 1_700_000_000.0


def _rule_file(message: str = "{node}", **changes: Any) -> str:
    rule = {"name": "x", "metric": "load_1", "op": ">", "threshold": 1, "message": message, **changes}
    return json.dumps({"rules": [rule]})  # JSON is YAML too


DUPLICATE_YAML = "rules:\n  - name: x\n    metric: load_1\n    op: '>'\n    threshold: 1\n    threshold: 5\n"
DUPLICATE_JSON = (
    '{"rules": [\n  {\n    "name": "x",\n    "metric": "load_1",\n    "op": ">",\n'
    + '    "threshold": 1,\n    "threshold": 5\n  }\n]}'
)


HOSTILE_FILES = [
    # The cases.
    ("nested.yaml", "[" * 100_000, r"rules in .*nested\.yaml: not valid YAML: nested deeper than 32 levels \(line"),
    ("nested.json", "[" * 100_000, r"rules in .*nested\.json: not valid JSON: nested deeper than 32 levels \(line"),
    ("nested_maps.yaml", "{a: " * 100_000, r"nested deeper than 32 levels"),
    ("globals.yaml", _rule_file("{value:{node.__init__.__globals__}}"),
     r"rule 'x' in .*globals\.yaml: message '\{value:\{node\.__init__\.__globals__\}\}' .*no nested fields"),
    ("width.yaml", _rule_file("{value:>10000000000}"),
     r"rule 'x' in .*width\.yaml: message '\{value:>10000000000\}' .*width 10000000000 is more than 64"),
    ("duplicate.yaml", DUPLICATE_YAML, r"in .*duplicate\.yaml: .*duplicate key 'threshold' \(line 6, column 5\)"),
    ("duplicate.json", DUPLICATE_JSON, r"rules in .*duplicate\.json: duplicate key 'threshold' \(line 7\)"),
    ("many.yaml", "".join(f"- {{name: r{i}}}\n" for i in range(RULES_MAX + 1)),
     rf"rules in .*many\.yaml: {RULES_MAX + 1} rules, more than the limit of {RULES_MAX}"),
    # Their relatives.
    ("attribute.yaml", _rule_file("{node.__class__}"), r"rule 'x' in .*uses \{node\.__class__\}: .*no attributes"),
    ("index.yaml", _rule_file("{node[0]}"), r"uses \{node\[0\]\}: .*no attributes, indexes or positions"),
    ("position.yaml", _rule_file("{0} {}"), r"uses \{0\}: .*positions"),
    ("precision.yaml", _rule_file("{value:.1000f}"), r"precision 1000 is more than 64"),
    ("conversion.yaml", _rule_file("{node!x}"), r"the only conversions are"),
    ("long_template.yaml", _rule_file("x" * 600), r"message is 600 characters long; at most 512"),
    ("values.yaml", "[" + "1," * VALUES_MAX + "]", rf"more than {VALUES_MAX} values"),
    ("values.json", "[" + "1," * VALUES_MAX + "1]", rf"more than {VALUES_MAX} values"),
    ("large.yaml", "#" * (RULES_FILE_MAX_BYTES + 1), rf"larger than the limit of {RULES_FILE_MAX_BYTES} bytes"),
    ("keys.yaml", "{" + ", ".join(f"k{i}: 1" for i in range(101)) + "}", r"more than 100 keys"),
    ("timestamp.yaml", "- !!timestamp x\n", r"the tag '!!timestamp' is not accepted"),
    ("bool.yaml", "- !!bool maybe\n", r"the tag '!!bool' is not accepted"),
    ("int.yaml", "- !!int ''\n", r"the tag '!!int' is not accepted"),
    ("syntax.yaml", "rules: [\n", r"not valid YAML: .*\(line 2, column 1\)"),
    ("long_name.yaml", _rule_file(name="n" * 200), r"name must be 1 to 128"),
    ("far.json", _rule_file(threshold=1e300), r"threshold must be between"),
    ("long_for.yaml", _rule_file(**{"for": 10**12}), r"for must be between"),
    ("huge_int.yaml", _rule_file(threshold=10**400), r"threshold must be a finite number"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "match"), HOSTILE_FILES, ids=[case[0] for case in HOSTILE_FILES])
def test_a_hostile_rules_file_is_one_clear_error_naming_the_file(
    tmp_path: Path, name: str, text: str, match: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RuleError, match=match) as caught:
        load_rules(path=path)
    message = str(caught.value)
    assert str(path) in message and caught.value.source == str(path)
    assert "\n" not in message and len(message) < 1000  # one line, whatever the file quoted back


def test_hostile_values_are_quoted_within_bounds(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(_rule_file(threshold="9" * 100_000, op="x" * 100_000))
    with pytest.raises(RuleError, match=r"rule 'x' in .*unknown op 'x+\.\.\.x+'") as caught:
        load_rules(path=path)
    assert len(str(caught.value)) < 1000
    path.write_text(json.dumps([{"name": "y" * 100_000, "metric": "load_1", "op": ">", "threshold": 1}]))
    with pytest.raises(RuleError, match=r"rule 'y+\.\.\.y+' in .*name must be") as caught:
        load_rules(path=path)
    assert len(str(caught.value)) < 1000
    path = tmp_path / "keys.json"  # YAML refuses a key of over 1024 characters by itself
    path.write_text(json.dumps([{"name": "cpu", **{f"k{i}" * 1000: 1 for i in range(50)}}]))
    with pytest.raises(RuleError, match=r"unknown key\(s\) \[.*, \.\.\.\]") as caught:
        load_rules(path=path)
    assert len(str(caught.value)) < 1000


def test_the_rule_count_cap_applies_to_the_config_list_and_a_file_at_the_cap_loads(tmp_path: Path) -> None:
    entries = [{"name": f"r{i}", "metric": "load_1", "op": ">", "threshold": i} for i in range(RULES_MAX + 1)]
    with pytest.raises(RuleError, match=rf"rules in alert_rules: {RULES_MAX + 1} rules, more than the limit"):
        load_rules(overrides=entries)
    path = tmp_path / "cap.json"
    path.write_text(json.dumps({"rules": entries[:RULES_MAX]}, indent=2))
    rules = load_rules(defaults=False, path=path)
    assert len(rules) == RULES_MAX and rules[-1].threshold == RULES_MAX - 1


def test_merge_keys_may_override_what_they_merge(tmp_path: Path) -> None:
    # Not a duplicate key: "<<" copies the base's keys, and the mapping's own keys win.
    path = tmp_path / "merge.yaml"
    path.write_text(
        "- &base {name: a, metric: load_1, op: '>', threshold: 1, for: 1m}\n- <<: *base\n  name: b\n  threshold: 2\n"
    )
    rules = {r.name: r for r in load_rules(defaults=False, path=path)}
    assert (rules["a"].threshold, rules["b"].threshold, rules["b"].for_s) == (1.0, 2.0, 60.0)


def test_a_node_name_is_data_and_every_message_fits_an_alert_record() -> None:
    node = "{value:>99999}{node.__class__}" + "n" * 170  # a hostile node name, within the model's 256
    rule = Rule("x", "cpu_percent", ">", 50, message="{node} " * 6 + "{value:.0f}%")
    (fired,) = AlertEngine([rule]).evaluate(make_snapshot(node, cpu_percent=90.0), T0)
    assert fired.alert.message.startswith(node + " " + node)  # shown as written, never read as a template
    assert len(fired.alert.message) == 1024 and fired.alert.message.endswith("…")
    assert Alert.from_dict(fired.alert.to_dict()) == fired.alert  # readers accept what the engine wrote


def test_a_pending_alert_claims_no_time_that_has_not_passed() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    (started,) = engine.evaluate(make_snapshot("vm", cpu_percent=92.0), T0)
    assert started.kind == "pending"
    assert started.alert.message == "CPU on vm above 90% (pending, fires after 5 min): at 92%"
    assert engine.evaluate(make_snapshot("vm", cpu_percent=92.0), T0 + 1) == []  # the clock alone is no update
    (update,) = engine.evaluate(make_snapshot("vm", cpu_percent=93.0), T0 + 2)
    assert (update.kind, update.alert.state) == ("updated", "pending")
    assert update.alert.message == "CPU on vm above 90% (pending, fires after 5 min): at 92%"
    (fired,) = engine.evaluate(make_snapshot("vm", cpu_percent=95.0), T0 + 312)
    assert fired.kind == "fired" and fired.alert.message == "CPU on vm above 90% for 5 min 12 s: at 95%"
    (later,) = engine.evaluate(make_snapshot("vm", cpu_percent=97.0), T0 + 900)
    assert later.alert.message == fired.alert.message  # how long it had held when it fired, still true


def test_default_messages_read_true_in_both_states_and_follow_an_inherited_op() -> None:
    for rule in DEFAULT_RULES:
        pending = rule.render("vm", 99.0, held_s=2.0, pending=True)
        firing = rule.render("vm", 99.0, held_s=rule.for_s)
        assert "minutes" not in pending and "5 min" not in pending.split("(pending")[0], pending
        if "{held}" in rule.message:
            assert f"(pending, fires after {duration(rule.for_s)})" in pending, pending
            assert f"for {duration(rule.for_s)}" in firing and "pending" not in firing, firing
    cpu = {r.name: r for r in load_rules(overrides=[{"name": "cpu", "op": "<", "threshold": 5.5}])}["cpu"]
    assert cpu.render("vm", 2.0, held_s=400) == "CPU on vm below 5.5% for 6 min 40 s: at 2%"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (0.05, "0 s"), (1, "1 s"), (2.56, "2.5 s"), (59.99, "59.9 s"), (60, "1 min"), (61, "1 min 1 s"),
     (300, "5 min"), (3600, "1 h"), (3661, "1 h 1 min"), (86400, "1 d"), (90061, "1 d 1 h")],
)  # fmt: skip
def test_durations_are_floored_and_need_no_plural(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize("template", ["{node:>64}", "{value:+,.2f}", "{value:_^20.3e}", "{node!r:.10}", "{held}"])
def test_plain_bounded_templates_are_accepted(template: str) -> None:
    Rule("x", "load_1", ">", 1, message=template).render("n1", 1234.5)
