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

Nothing executable is read: YAML goes through ``yaml.safe_load``'s rules only. A rules file is bounded, each
limit checked before or while parsing, so a hostile file costs at most the limits and fails with one
:class:`RuleError` naming the file (never a parser's ``RecursionError`` or ``MemoryError``):

- at most :data:`~clusternb.alerting.parsing.RULES_FILE_MAX_BYTES` bytes (checked before parsing);
- at most :data:`~clusternb.alerting.parsing.VALUES_MAX` values, nested at most
  :data:`~clusternb.alerting.parsing.NESTING_MAX` levels, with no key given twice in a mapping (checked
  while parsing, see :mod:`clusternb.alerting.parsing`);
- at most :data:`~clusternb.alerting.parsing.RULES_MAX` rules per source (the file, or the config list);
- message templates that only fill in fields (see :mod:`clusternb.alerting.templates`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from clusternb.alerting.parsing import RULES_FILE_MAX_BYTES, RULES_MAX, parse_json, parse_yaml
from clusternb.alerting.rules import DEFAULT_RULES, Rule, RuleError, parse_duration
from clusternb.arguments import shown

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
        with file.open("rb") as handle:
            raw = handle.read(RULES_FILE_MAX_BYTES + 1)  # never more: the file may be huge, or endless
        text = raw.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not content
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read the rules file: {exc}", source=source) from None
    if len(raw) > RULES_FILE_MAX_BYTES:
        raise RuleError(f"the file is larger than the limit of {RULES_FILE_MAX_BYTES} bytes", source=source)
    try:
        data = parse_json(text) if file.suffix.lower() == ".json" else parse_yaml(text)
    except RuleError as exc:
        raise RuleError(exc.problem, source=source) from None
    if data is None:
        return []
    if isinstance(data, Mapping):
        extra = sorted(str(k) for k in data if k != "rules")
        if extra:
            raise RuleError(f"unknown top-level key(s) {_listed(extra)}; expected only 'rules'", source=source)
        data = data.get("rules") or []
    if not isinstance(data, list):
        raise RuleError(
            f"expected a list of rules or a mapping with a 'rules' list, got {type(data).__name__}", source=source
        )
    return data


def _apply(rules: dict[str, Rule], entries: Sequence[Any], source: str) -> None:
    if len(entries) > RULES_MAX:
        raise RuleError(f"{len(entries)} rules, more than the limit of {RULES_MAX} per source", source=source)
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
        raise RuleError(f"unknown key(s) {_listed(unknown)}; allowed: {', '.join(_KEYS)}")
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


def _listed(names: list[str]) -> str:
    # The names a file got wrong, quoted within bounds: it may have a thousand, each a megabyte long.
    shown_names = ", ".join(shown(n) for n in names[:5])
    return f"[{shown_names}{', ...' if len(names) > 5 else ''}]"
