"""Alert message templates: the fields a message may show, checked once when a rule is made, rendered safely.

A template is a ``str.format`` string, and ``str.format`` does more than fill in fields: ``{node.__class__}``
reaches attributes, ``{node[0]}`` indexes, ``{value:{node.__init__.__globals__}}`` formats a nested field into
the format spec, and ``{value:>10000000000}`` allocates ten gigabytes. Rules come from a file that is re-read
while the server runs, so a template may hold only, besides text:

- plain named fields from :data:`PLACEHOLDERS` (no attribute, no index, no position);
- an optional conversion (``!s``, ``!r``, ``!a``);
- an optional standard format spec (``>8``, ``.1f``, ``,.0f``), without nested fields, whose width and
  precision are at most :data:`SPEC_NUMBER_MAX`;

and is at most :data:`TEMPLATE_MAX` characters long. Anything else is refused when the rule is made, with the
template in the message. Field values are passed to ``format`` as arguments, so a node named ``{value:>99999}``
is shown as those characters, never read as a template; a rendered message is cut to
:data:`~clusternb.alerting.records.MESSAGE_MAX` characters, the most an alert record holds.

``{direction}`` words the rule's comparison (``above``, ``at or above``, ``below``, ``at or below``), so a
message stays true when a rule's ``op`` is changed and its message inherited. Durations read true in each
state: ``{for}`` is the rule's wait (``5 min``); ``{held}`` is how long the condition has held, worded by state:

=================  ===================================  =====================================================
state              ``{held}``                           e.g. the built-in ``cpu`` rule
=================  ===================================  =====================================================
pending            ``(pending, fires after 5 min)``     ``CPU on vm above 90% (pending, fires after 5 min):
                                                        at 92%``
firing             ``for 5 min``                        ``CPU on vm above 90% for 5 min: at 92%``
fired at once      ``now``                              (a rule with no ``for``)
=================  ===================================  =====================================================

Times are floored, so "for 5 min" is never said before five minutes have passed; units are abbreviated
(``s``, ``min``, ``h``, ``d``), so no count needs a plural.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from typing import Any, Final

from clusternb.alerting.records import MESSAGE_MAX

#: Fields a message template may use.
PLACEHOLDERS: Final = ("node", "value", "threshold", "metric", "rule", "direction", "for", "held")
#: The longest template accepted (a rendered message may hold up to MESSAGE_MAX characters).
TEMPLATE_MAX: Final = 512
#: The largest width or precision a format spec may ask for.
SPEC_NUMBER_MAX: Final = 64

_CONVERSIONS = (None, "s", "r", "a")
_DIRECTIONS = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}
# The standard format spec mini-language ([[fill]align][sign][z][#][0][width][grouping][.precision][type]),
# minus nested fields: a fill may be any character but a brace.
_SPEC = re.compile(
    r"(?:[^{}]?[<>=^])?[-+ ]?z?#?0?(?P<width>\d+)?[,_]?(?:\.(?P<precision>\d+))?[bcdeEfFgGnosxX%]?", re.DOTALL
)
_FIELD_HELP = ", ".join("{" + name + "}" for name in PLACEHOLDERS)


def duration(seconds: float) -> str:
    """``seconds`` in words, floored: ``2.5 s``, ``59.9 s``, ``5 min``, ``1 min 30 s``, ``2 h 5 min``, ``3 d``."""
    if not math.isfinite(seconds) or seconds <= 0:
        return "0 s"
    if seconds < 60:
        return f"{math.floor(seconds * 10) / 10:g} s"
    whole = int(seconds)
    for size, unit, smaller, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s")):
        if whole >= size:
            big, rest = divmod(whole, size)
            part = rest // smaller
            return f"{big} {unit} {part} {small_unit}" if part else f"{big} {unit}"
    raise AssertionError("unreachable: seconds >= 60 is at least one minute")


def held(held_s: float, wait_s: float, pending: bool) -> str:
    """How long a condition has held, true in its state: see the table in this module's docstring."""
    if pending:  # no elapsed time: a stored message must stay true until its alert next changes
        return f"(pending, fires after {duration(wait_s)})"
    return "now" if held_s < 0.1 else f"for {duration(held_s)}"


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What a message may tell about one alert: its rule's side (name, metric, comparison, wait) and the
    alert's own (node, value, how long the condition has held, whether it is still pending)."""

    node: str
    value: float
    threshold: float
    metric: str
    rule: str
    op: str
    wait_s: float
    held_s: float
    pending: bool

    def placeholders(self) -> dict[str, Any]:
        """The value of each of :data:`PLACEHOLDERS`."""
        return {
            "node": self.node,
            "value": self.value,
            "threshold": self.threshold,
            "metric": self.metric,
            "rule": self.rule,
            "direction": _DIRECTIONS[self.op],
            "for": duration(self.wait_s),
            "held": held(self.held_s, self.wait_s, self.pending),
        }


#: Facts to render a template with once, when a rule is made: a spec that cannot format its field shows then.
_TRIAL = MessageFacts(
    node="n", value=1.5, threshold=1.5, metric="m", rule="r", op=">", wait_s=300, held_s=2, pending=True
)


def render(template: str, facts: MessageFacts) -> str:
    """The message: ``template`` filled in (a template :func:`template_problem` accepted), cut to MESSAGE_MAX."""
    text = template.format(**facts.placeholders())
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"


def template_problem(template: Any) -> str | None:
    """Why ``template`` may not be a message template, or ``None`` when it may (see the module docstring)."""
    if not isinstance(template, str):
        return f"message must be a string, got {type(template).__name__}"
    if len(template) > TEMPLATE_MAX:
        return f"message is {len(template)} characters long; at most {TEMPLATE_MAX} are allowed"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"message {template!r} is not a valid template: {exc}"
    unknown = sorted({name for _, name, _, _ in parsed if name and name.isidentifier() and name not in PLACEHOLDERS})
    if unknown:
        return f"message {template!r} uses unknown placeholder(s) {unknown}; allowed: {_FIELD_HELP}"
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        problem = _field_problem(name, spec, conversion)
        if problem is not None:
            whole = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            return f"message {template!r} uses {whole}: {problem}"
    try:  # a spec that cannot format the field's type ("{value:d}") only shows when rendering
        render(template, _TRIAL)
    except (ValueError, TypeError) as exc:
        return f"message {template!r} does not render: {exc}"
    return None


def _field_problem(name: str, spec: str | None, conversion: str | None) -> str | None:
    """Why one replacement field may not appear in a template: only a plain name, a conversion and a plain,
    bounded format spec may (no attribute or index to reach through, no nested field, no huge allocation)."""
    if not name.isidentifier():
        return f"only the plain fields {_FIELD_HELP} may appear (no attributes, indexes or positions)"
    if conversion not in _CONVERSIONS:
        return "the only conversions are !s, !r and !a"
    match = _SPEC.fullmatch(spec or "")
    if match is None:
        return f"{spec!r} is not a plain format spec (no nested fields)"
    for part in ("width", "precision"):
        number = match.group(part)
        if number is not None and int(number) > SPEC_NUMBER_MAX:
            return f"{part} {number} is more than {SPEC_NUMBER_MAX}"
    return None
