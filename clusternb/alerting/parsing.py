"""The limits of a rules file, and parsing its text without trusting it: bounded work, no duplicate keys.

What a small text can do to a parser, and the limit that stops it while parsing:

- **size**: PyYAML parses about 50,000 values a second here, so a 1 MiB list of numbers took 24 s to be
  refused for holding too many rules. Parsing stops past :data:`VALUES_MAX` values (keys, items and
  scalars), which :data:`RULES_MAX` rules of ten keys stay within; the file's bytes are bounded before
  parsing (:data:`RULES_FILE_MAX_BYTES`);
- **nesting**: 100,000 ``[`` blow Python's stack in both parsers (``RecursionError``). Both count depth while
  they parse and stop at :data:`NESTING_MAX` (a rules file needs four levels);
- **duplicate keys**: YAML and Python's ``json`` both keep the last of two equal keys, so a rule with two
  ``threshold`` lines silently takes the second. Both refuse it, naming the key and its line;
- **merge keys** (``<<: *base``) may copy many keys into a mapping: a mapping holds at most :data:`KEYS_MAX`;
- **explicit tags**: ``!!python/...`` is refused by ``SafeLoader`` already, but even its safe constructors
  fail with ``AttributeError`` (``!!timestamp x``), ``KeyError`` (``!!bool x``) or ``IndexError``
  (``!!int ''``). A rules file needs no tag, so none is accepted.

Both parsers are the libraries' own, extended through their hooks: a :class:`yaml.SafeLoader` subclass
(in :mod:`clusternb.alerting.yaml_rules`, imported on the first YAML text; ``compose_node`` counts depth,
``flatten_mapping`` checks keys) and a :class:`json.JSONDecoder` whose
``parse_object``/``parse_array`` hooks do the same. Those two hooks are honoured only by Python's pure-Python
scanner (the C one ignores them), which parses a rules file at the size limit in a few tens of milliseconds.

Every problem is a :class:`~clusternb.alerting.rules.RuleError` with a one-line message ending in the line
number; the caller adds the file name.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from collections.abc import Callable
from typing import Any, Final

from clusternb.alerting.rules import RuleError
from clusternb.arguments import shown

#: The largest rules file read, in bytes (checked before parsing): RULES_MAX commented rules fit in it.
RULES_FILE_MAX_BYTES: Final = 512 * 1024
#: The most rules one source (a file, or the ``alert_rules`` config list) may hold.
RULES_MAX: Final = 1000
#: The most values (keys, items, scalars) a file may hold: RULES_MAX rules of ten keys are 21,001.
VALUES_MAX: Final = 25_000
#: The deepest nesting accepted (a rules file uses four levels: mapping, rule list, rule, value).
NESTING_MAX: Final = 32
#: The most keys one mapping may hold, merged keys included (a rule has ten).
KEYS_MAX: Final = 100


def parse_yaml(text: str) -> Any:
    """The document in ``text``, read with ``yaml.safe_load``'s rules plus the limits above.

    PyYAML is imported on the first YAML text, not with this module: the agent imports the rules machinery
    whether or not it reads a rules file, and PyYAML would add about 1 MiB to its RSS.
    """
    from clusternb.alerting.yaml_rules import parse_yaml_text

    return parse_yaml_text(text)


def parse_json(text: str) -> Any:
    """The document in ``text``, read as ``json.loads`` reads it plus the limits above."""
    try:
        return _RulesDecoder().decode(text)
    except RuleError:
        raise
    except json.JSONDecodeError as exc:
        raise RuleError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:  # parse_int's own: an int of 5,000 digits
        raise RuleError(f"not valid JSON: {exc}") from None


def too_much(depth: int, values: int) -> str | None:
    """The limit a parser at ``depth`` that has read ``values`` values has reached; None while within them."""
    if depth >= NESTING_MAX:
        return f"nested deeper than {NESTING_MAX} levels"
    if values >= VALUES_MAX:
        return f"more than {VALUES_MAX} values (keys, items, scalars), the limit of a file (room for {RULES_MAX} rules)"
    return None


_Scan = Callable[[str, int], tuple[Any, int]]


class _RulesDecoder(json.JSONDecoder):
    """``json.JSONDecoder`` that counts nesting and refuses duplicate keys, through its parse hooks."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._values = 0
        self.parse_object = self._object
        self.parse_array = self._array
        # CPython's json has had these hooks since 2.6 but typeshed leaves them out. The C scanner ignores them.
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]

    def _enter(self, text: str, at: int) -> None:
        problem = too_much(self._depth, self._values)
        if problem:
            raise json.JSONDecodeError(problem, text, at)
        self._depth += 1

    def _counted(self, scan_once: _Scan, starts: list[int] | None = None) -> _Scan:
        # Every value inside an object or array is scanned through this: count it, and note where it starts.
        def scan_value(text: str, at: int) -> tuple[Any, int]:
            self._values += 1
            if self._values > VALUES_MAX:
                raise json.JSONDecodeError(too_much(0, self._values) or "", text, at)
            if starts is not None:
                starts.append(at)
            return scan_once(text, at)

        return scan_value

    def _object(
        self, text_and_end: tuple[str, int], strict: bool, scan_once: _Scan, *_hooks: Any, **_memo: Any
    ) -> tuple[dict[str, Any], int]:
        text, end = text_and_end
        starts: list[int] = []  # where each value begins, in order: the line of a duplicate key
        scan_value = self._counted(scan_once, starts)
        self._enter(text, end - 1)
        try:
            pairs, end = json.decoder.JSONObject(  # type: ignore[attr-defined]
                text_and_end,
                strict,
                scan_value,
                None,
                list,
                self.memo,  # type: ignore[attr-defined]
            )
        finally:
            self._depth -= 1
        seen: set[str] = set()
        for (key, _), at in zip(pairs, starts, strict=True):
            if key in seen:  # valid JSON (RFC 8259 only says "should"), so not a JSONDecodeError
                raise RuleError(f"duplicate key {shown(key)} (line {text.count(chr(10), 0, at) + 1})")
            seen.add(key)
        return dict(pairs), end

    def _array(self, text_and_end: tuple[str, int], scan_once: _Scan) -> tuple[list[Any], int]:
        text, end = text_and_end
        self._enter(text, end - 1)
        try:
            return json.decoder.JSONArray(text_and_end, self._counted(scan_once))  # type: ignore[attr-defined,no-any-return]
        finally:
            self._depth -= 1
