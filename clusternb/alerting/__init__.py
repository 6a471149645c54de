"""Alerting, the pure core: rules, their loading, the alert lifecycle engine, alert records and their frame.

No Redis, no threads, no clock: callers pass ``now`` and persist the transitions the engine returns.

>>> from clusternb.alerting import AlertEngine, load_rules
>>> engine = AlertEngine(load_rules(path="rules.yaml"), history=1000)
>>> for t in engine.evaluate(snapshot, now=time.time()):
...     store.put_alert(t)          # one record per alert_id ("rule:node")

The package is ``alerting``, not ``alerts``: ``clusternb.alerts`` is the public query function, and importing a
submodule of that name would replace the function on the package.

Errors::

    ValueError
    ├── RuleError       an invalid rule or rules file (names the rule, the file and the problem)
    └── SchemaError     an alert record this schema version did not write (from clusternb.model)
"""

from __future__ import annotations

from clusternb.alerting.engine import DEFAULT_HISTORY, AlertEngine
from clusternb.alerting.loading import load_rules, read_rules_file
from clusternb.alerting.records import ALERT_SCHEMA_VERSION, Alert, AlertState, Transition, TransitionKind, alert_id
from clusternb.alerting.rules import (
    DEFAULT_RULES,
    METRICS,
    NODE_OFFLINE,
    OPS,
    SERVICE_DOWN,
    Rule,
    RuleError,
    metric_value,
    parse_duration,
)
from clusternb.alerting.templates import PLACEHOLDERS
from clusternb.model import SchemaError


def __getattr__(name: str) -> object:
    # alerts_frame needs pandas; the agent, which evaluates rules but builds no frames, never loads it.
    if name == "alerts_frame":
        from clusternb.alerting.frame import alerts_frame

        return alerts_frame
    raise AttributeError(f"module 'clusternb.alerting' has no attribute {name!r}")


__all__ = [
    "ALERT_SCHEMA_VERSION",
    "DEFAULT_HISTORY",
    "DEFAULT_RULES",
    "METRICS",
    "NODE_OFFLINE",
    "OPS",
    "PLACEHOLDERS",
    "SERVICE_DOWN",
    "Alert",
    "AlertEngine",
    "AlertState",
    "Rule",
    "RuleError",
    "SchemaError",
    "Transition",
    "TransitionKind",
    "alert_id",
    "alerts_frame",
    "load_rules",
    "metric_value",
    "parse_duration",
    "read_rules_file",
]
