"""Reading rules from where people write them: a YAML/JSON file and a list of dicts from traitlets config.

Layers apply in order, each over the previous: built-in rules, then the file, then the config list (the most
specific setting wins, as everywhere in clusternb). An entry whose name matches an existing rule changes only
the keys it gives, so ``{"name": "cpu", "enabled": false}`` disables the CPU rule and
``{"name": "cpu", "threshold": 95}`` moves its threshold. When an entry changes ``metric``, ``op`` or
``threshold`` without giving ``clear``, ``clear`` falls back to the new threshold: an inherited clear value
could otherwise land on the wrong side of it. An entry with a new name is a new rule and needs
``metric``, ``op`` and ``threshold``.

A rules file is either a list of rules or a mapping with a ``rules`` list::

    rules:
      - name: cpu
        threshold: 95
        for: 10m
      - name: scratch_full
        metric: disk_used_percent
        op: ">"
        threshold: 80
        severity: info
        message: "{node}: scratch at {value:.0f}%"

Nothing executable is read: YAML goes through ``yaml.safe_load`` only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from clusternb.alerting.rules import DEFAULT_RULES, Rule, RuleError, parse_duration

_RULE_KEYS = tuple(f.name for f in fields(Rule))
_KEYS = (*_RULE_KEYS, "for")  # "for: 2m" reads better in a file than "for_s: 120"
_REQUIRED_NEW = ("metric", "op", "threshold")


def load_rules(
    defaults: bool = True,
    overrides: Sequence[Mapping[str, Any]] | None = None,
    path: str | Path | None = None,
) -> list[Rule]:
    """The effective rules: built-ins (if ``defaults``), then the rules file at ``path``, then ``overrides``.

    Disabled rules are returned too (``enabled=False``) so a listing can show them; the engine skips them.
    Raises one :class:`RuleError` for the first invalid entry, naming the rule and its source. Nothing is
    half-applied: callers swap an engine's rules only with a list this function returned.
    """
    rules: dict[str, Rule] = {r.name: r for r in DEFAULT_RULES} if defaults else {}
    if path is not None:
        _apply(rules, read_rules_file(path), source=str(path))
    if overrides:
        _apply(rules, overrides, source="alert_rules")
    return list(rules.values())


def read_rules_file(path: str | Path) -> list[Any]:
    """The raw rule entries of a YAML or JSON file (``.json`` is parsed as JSON, anything else as YAML).

    An empty file holds no rules. Entries are not validated here; :func:`load_rules` does that.
    """
    source = str(path)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read the rules file: {exc}", source=source) from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:  # json.JSONDecodeError is a ValueError
        kind = "JSON" if file.suffix.lower() == ".json" else "YAML"
        raise RuleError(f"not valid {kind}: {exc}", source=source) from None
    if data is None:
        return []
    if isinstance(data, Mapping):
        extra = sorted(str(k) for k in data if k != "rules")
        if extra:
            raise RuleError(f"unknown top-level key(s) {extra}; expected only 'rules'", source=source)
        data = data.get("rules") or []
    if not isinstance(data, list):
        raise RuleError(
            f"expected a list of rules or a mapping with a 'rules' list, got {type(data).__name__}", source=source
        )
    return data


def _apply(rules: dict[str, Rule], entries: Iterable[Any], source: str) -> None:
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise RuleError(f"entry #{number} must be a mapping, got {type(entry).__name__}", source=source)
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise RuleError(f"entry #{number} has no 'name'", source=source)
        if name in seen:
            raise RuleError("duplicate name: each rule may appear once per source", rule=name, source=source)
        seen.add(name)
        try:
            rules[name] = _build(entry, rules.get(name))
        except RuleError as exc:
            raise RuleError(exc.problem, rule=name, source=source) from None


def _build(entry: Mapping[str, Any], base: Rule | None) -> Rule:
    unknown = sorted(str(k) for k in entry if k not in _KEYS)
    if unknown:
        raise RuleError(f"unknown key(s) {unknown}; allowed: {', '.join(_KEYS)}")
    values = dict(entry)
    if "for" in values:
        if "for_s" in values:
            raise RuleError("give 'for' or 'for_s', not both")
        values["for_s"] = values.pop("for")
    if "for_s" in values:
        try:
            values["for_s"] = parse_duration(values["for_s"])
        except ValueError as exc:
            raise RuleError(f"bad duration for 'for': {exc}") from None
    if base is None:
        missing = [k for k in _REQUIRED_NEW if k not in values]
        if missing:
            raise RuleError(f"no rule of this name exists yet, so it needs {', '.join(missing)}")
        return Rule(**values)
    merged = base.to_dict()
    if "clear" not in values and any(k in values for k in _REQUIRED_NEW):
        merged["clear"] = None
    merged.update(values)
    return Rule(**merged)
