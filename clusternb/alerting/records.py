"""Alert records and the transitions between them, as frozen, versioned data that can cross a process boundary.

There is exactly one :class:`Alert` per rule and node at a time, identified by ``alert_id = "rule:node"``, so a
store can keep one record per id and overwrite it on every :class:`Transition`. ``from_dict`` validates instead
of trusting (like :mod:`clusternb.model`): a record of another schema version, another program or a corrupted
write raises :class:`~clusternb.model.SchemaError`, which readers count and skip.

Lifecycle: ``pending`` (condition holds, waiting out the rule's ``for``) -> ``firing`` -> ``resolved``. A pending
alert whose condition stops holding is *dropped*: it never fired, so it leaves no trace in history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

from clusternb.model import NAME_MAX, TIME_MAX, SchemaError
from clusternb.vocab import ALERT_STATE_ORDER, SEVERITY_ORDER

#: Bumped whenever an Alert field is added, removed or changes meaning. Readers skip records of other versions.
ALERT_SCHEMA_VERSION: Final = 1

AlertState = Literal["pending", "firing", "resolved"]

#: What happened to an alert; every kind but ``dropped`` and ``resolved`` leaves it active.
#: ``pending``: started waiting; ``fired``: became firing; ``updated``: a newer value (or rule change);
#: ``acknowledged``: a person acknowledged it; ``resolved``: ended after firing, goes to history;
#: ``dropped``: a pending alert whose condition stopped holding before ``for`` elapsed (delete it, no history).
TransitionKind = Literal["pending", "fired", "updated", "acknowledged", "resolved", "dropped"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert about one node (or service) raised by one rule.

    ``value`` is the value that triggered the alert: the first value while pending, the value at the moment it
    fired once firing. ``last_value`` is the newest value seen. Times are epoch seconds (UTC).
    """

    rule: str
    node: str  # node name, or the service name for service_down rules
    metric: str
    severity: str
    state: AlertState
    value: float
    last_value: float
    threshold: float
    message: str
    started_at: float  # when the condition first held
    fired_at: float | None = None
    ended_at: float | None = None
    acknowledged: bool = False
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    schema: int = ALERT_SCHEMA_VERSION

    @property
    def alert_id(self) -> str:
        return alert_id(self.rule, self.node)

    @property
    def active(self) -> bool:
        """Pending or firing: not yet resolved."""
        return self.state != "resolved"

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict; ``alert_id`` is included for readers that index by it."""
        out: dict[str, Any] = {"alert_id": self.alert_id}
        out.update({f.name: getattr(self, f.name) for f in _FIELDS})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Validate and build; raises :class:`~clusternb.model.SchemaError` on anything this version did not write."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"alert must be a mapping, got {type(data).__name__}")
        if data.get("schema") != ALERT_SCHEMA_VERSION:
            raise SchemaError(f"alert schema {data.get('schema')!r} is not {ALERT_SCHEMA_VERSION}")
        unknown = sorted(str(k) for k in data if k not in _TYPES and k != "alert_id")
        if unknown:
            raise SchemaError(f"alert has unknown fields {unknown}")
        kwargs: dict[str, Any] = {}
        for f in _FIELDS:
            if f.name not in data:
                if f.name in _REQUIRED:
                    raise SchemaError(f"alert is missing field {f.name!r}")
                continue
            kwargs[f.name] = _checked(f.name, data[f.name])
        alert = cls(**kwargs)
        if "alert_id" in data and data["alert_id"] != alert.alert_id:
            raise SchemaError(f"alert_id {data['alert_id']!r} does not match rule and node ({alert.alert_id!r})")
        problem = _lifecycle_problem(alert)
        if problem:
            raise SchemaError(f"alert {alert.alert_id!r}: {problem}")
        return alert


@dataclass(frozen=True, slots=True)
class Transition:
    """A change the engine made, to persist or announce: store ``alert`` under its id, or delete it on
    ``dropped``, and move it to history on ``resolved``."""

    alert: Alert
    kind: TransitionKind

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "alert": self.alert.to_dict()}


def alert_id(rule: str, node: str) -> str:
    """The stable id of the one alert a rule may have about a node: ``"rule:node"``."""
    return f"{rule}:{node}"


_FIELDS = fields(Alert)
_REQUIRED = {f.name for f in _FIELDS if f.name not in ("fired_at", "ended_at", "acknowledged",
                                                        "acknowledged_by", "acknowledged_at", "schema")}  # fmt: skip
_STR, _NUM, _OPT_NUM, _OPT_STR = (str,), (int, float), (int, float, type(None)), (str, type(None))
_TYPES: dict[str, tuple[type, ...]] = {
    "rule": _STR, "node": _STR, "metric": _STR, "severity": _STR, "state": _STR, "message": _STR,
    "value": _NUM, "last_value": _NUM, "threshold": _NUM, "started_at": _NUM,
    "fired_at": _OPT_NUM, "ended_at": _OPT_NUM, "acknowledged_at": _OPT_NUM,
    "acknowledged": (bool,), "acknowledged_by": _OPT_STR, "schema": (int,),
}  # fmt: skip
_NUM_FIELDS = {name for name, allowed in _TYPES.items() if float in allowed}
_TIME_FIELDS = {"started_at", "fired_at", "ended_at", "acknowledged_at"}
#: Bounds of what an alert can say, checked where records are read back (see clusternb.model for the fields').
VALUE_MAX: Final = 2.0**61  # above every metric's bound (bytes: 2**60), below what a frame or a sum chokes on
#: The longest message and rule name a record holds; rules and their rendering keep within them.
MESSAGE_MAX: Final = 1024
RULE_NAME_MAX: Final = 128
_TEXT_MAX = {"message": MESSAGE_MAX, "rule": RULE_NAME_MAX, "metric": 64}


def _checked(name: str, value: Any) -> Any:
    """``value`` as field ``name`` holds it; raises :class:`SchemaError` for anything this version did not write."""
    value = _typed(name, value)
    _check_bounds(name, value)
    _check_words(name, value)
    return value


def _typed(name: str, value: Any) -> Any:
    """The value if its type is the field's, with a JSON number of a float field made a float again."""
    allowed = _TYPES[name]
    # bool is an int subclass; a bool where a number belongs is a foreign record, not a 1.
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        raise SchemaError(f"alert field {name!r} has type {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SchemaError(f"alert field {name!r} is not finite")
    if name in _NUM_FIELDS and isinstance(value, int):
        value = float(value)  # JSON has one number type; a float field stays a float after a round trip
    return value


def _check_bounds(name: str, value: Any) -> None:
    """Physical bounds: times between 1970 and 2100, values any metric can reach, texts a record can hold."""
    if name in _TIME_FIELDS and value is not None and not 0.0 <= value <= TIME_MAX:
        raise SchemaError(f"alert field {name!r} is not a time between 1970 and 2100")
    if name in _NUM_FIELDS and name not in _TIME_FIELDS and abs(value) > VALUE_MAX:
        raise SchemaError(f"alert field {name!r} is beyond what any metric reaches")
    if isinstance(value, str) and len(value) > _TEXT_MAX.get(name, NAME_MAX):
        raise SchemaError(f"alert field {name!r} is longer than {_TEXT_MAX.get(name, NAME_MAX)} characters")


def _check_words(name: str, value: Any) -> None:
    """The fields that name things: an id's parts are non-empty and split at ':', the rest are from a vocabulary."""
    if name in ("rule", "node") and not value:
        raise SchemaError(f"alert field {name!r} is empty")
    if name == "rule" and ":" in value:
        raise SchemaError(f"alert rule {value!r} contains ':'")
    if name == "severity" and value not in SEVERITY_ORDER:
        raise SchemaError(f"alert severity {value!r} is not one of {SEVERITY_ORDER}")
    if name == "state" and value not in ALERT_STATE_ORDER:
        raise SchemaError(f"alert state {value!r} is not one of {ALERT_STATE_ORDER}")


def _lifecycle_problem(alert: Alert) -> str | None:
    if alert.state == "pending" and (alert.fired_at is not None or alert.ended_at is not None):
        return "a pending alert has neither fired_at nor ended_at"
    if alert.state == "firing" and (alert.fired_at is None or alert.ended_at is not None):
        return "a firing alert has fired_at and no ended_at"
    if alert.state == "resolved" and (alert.fired_at is None or alert.ended_at is None):
        return "a resolved alert has fired_at and ended_at"
    if not alert.acknowledged and (alert.acknowledged_by is not None or alert.acknowledged_at is not None):
        return "acknowledged_by/acknowledged_at set on an unacknowledged alert"
    return None
