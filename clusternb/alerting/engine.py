"""The alert engine: rules + observations + a clock the caller passes in -> alert lifecycle transitions.

The engine is pure state: no I/O, no clock of its own, no threads (a lock only, so a REST handler may
acknowledge while a sampler thread evaluates). Every method that changes an alert returns the
:class:`~clusternb.alerting.records.Transition` list, and that list is the whole contract with storage:
persist each transition's alert under its id and the store mirrors the engine.

Three entry points feed it, because three different parts of the system see three different things:

- :meth:`AlertEngine.evaluate` gets each node's snapshot (node rules: cpu, memory, disk, GPUs, ...);
- :meth:`AlertEngine.evaluate_offline` / :meth:`AlertEngine.node_back` come from whoever declares a node
  offline (``node_offline`` rules; a snapshot cannot say its node is gone);
- :meth:`AlertEngine.evaluate_service` comes from service probes (``service_down`` rules, keyed by service).

A metric the node does not report (no GPU, NaN) counts as "condition not holding": a pending alert is dropped
and a firing one resolves, as when a Prometheus series disappears. Alerts about a node that stopped sending
snapshots keep their last state; :meth:`AlertEngine.forget_node` ends them when the node leaves for good.

Messages claim only time that has passed: each is rendered when its alert changes, from ``now`` and the
alert's own times (see :mod:`clusternb.alerting.templates`). A pending alert says that it is pending and after
how long it fires, no elapsed time (the message is stored, and would grow false while it waits: ``started_at``
is the live figure); a firing one, how long the condition had held when it fired, which stays true.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace

from clusternb.alerting.records import Alert, Transition, alert_id
from clusternb.alerting.rules import DEFAULT_RULES, Rule, RuleError, metric_value
from clusternb.model import NodeSnapshot

#: Resolved alerts kept by default (oldest dropped first).
DEFAULT_HISTORY = 1000


class AlertEngine:
    """Evaluates rules and keeps one alert per (rule, node): pending -> firing -> resolved.

    ``rules`` must have unique names (a :class:`RuleError` otherwise); disabled rules are kept but never
    evaluated. ``history`` bounds how many resolved alerts are remembered.
    """

    def __init__(self, rules: Iterable[Rule] = DEFAULT_RULES, history: int = DEFAULT_HISTORY) -> None:
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError(f"history must be an int >= 0, got {history!r}")
        self._lock = threading.RLock()
        self._rules = _index(rules)
        self._active: dict[str, Alert] = {}
        self._history: deque[Alert] = deque(maxlen=history)

    # -- reading ----------------------------------------------------------------------------------------

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The current rules, disabled ones included, in the order they were given."""
        with self._lock:
            return tuple(self._rules.values())

    def active(self) -> list[Alert]:
        """Pending and firing alerts, oldest first."""
        with self._lock:
            return sorted(self._active.values(), key=lambda a: (a.started_at, a.alert_id))

    def history(self) -> list[Alert]:
        """Resolved alerts, in the order they resolved (at most ``history`` of them)."""
        with self._lock:
            return list(self._history)

    def alerts(self) -> list[Alert]:
        """Active alerts then history: everything :func:`~clusternb.alerting.alerts_frame` may show."""
        with self._lock:
            return [*self.active(), *self._history]

    def get(self, alert_id: str) -> Alert | None:
        """The active alert with this id, if any."""
        with self._lock:
            return self._active.get(alert_id)

    # -- observations -----------------------------------------------------------------------------------

    def evaluate(self, snapshot: NodeSnapshot, now: float) -> list[Transition]:
        """Apply every enabled node rule to one snapshot of one node."""
        with self._lock:
            return _collect(
                self._step(rule, snapshot.node, metric_value(snapshot, rule.metric), now)
                for rule in self._enabled("node")
            )

    def evaluate_offline(self, node: str, silence_s: float, now: float) -> list[Transition]:
        """``node`` has sent nothing for ``silence_s`` seconds and its owner considers it offline."""
        with self._lock:
            return _collect(self._step(rule, node, float(silence_s), now) for rule in self._enabled("offline"))

    def node_back(self, node: str, now: float) -> list[Transition]:
        """``node`` is heard from again: its ``node_offline`` alerts resolve (or, if pending, are dropped)."""
        with self._lock:
            return _collect(self._step(rule, node, None, now) for rule in self._enabled("offline"))

    def evaluate_service(self, name: str, up: bool, now: float) -> list[Transition]:
        """A probe of service ``name`` answered (``up``) or not; ``service_down`` sees 0.0 or 1.0."""
        value = 0.0 if up else 1.0
        with self._lock:
            return _collect(self._step(rule, name, value, now) for rule in self._enabled("service"))

    def evaluate_kernels(self, shares: Mapping[str, float | None], now: float) -> list[Transition]:
        """Kernel alert subjects (:func:`~clusternb.alerting.rules.kernel_subject`) and each one's share of its
        node's memory, in percent; None for a kernel that is gone (its alert ends)."""
        with self._lock:
            return _collect(
                self._step(rule, subject, value, now)
                for rule in self._enabled("kernel")
                for subject, value in shares.items()
            )

    def forget_node(self, node: str, now: float) -> list[Transition]:
        """End every alert about ``node`` (it left the cluster cleanly; nothing about it is true any more)."""
        with self._lock:
            return [self._end(a, now) for a in list(self._active.values()) if a.node == node]

    # -- people and configuration -----------------------------------------------------------------------

    def acknowledge(self, alert_id: str, by: str | None = None, now: float | None = None) -> Transition:
        """Mark an active alert as acknowledged (by whom, when); it stays so until it resolves.

        A later alert of the same rule and node is a new alert and starts unacknowledged.
        Raises ``KeyError`` if no alert with this id is active.
        """
        with self._lock:
            current = self._active.get(alert_id)
            if current is None:
                raise KeyError(f"no active alert {alert_id!r}")
            acked = replace(current, acknowledged=True, acknowledged_by=by, acknowledged_at=now)
            self._active[alert_id] = acked
            return Transition(acked, "acknowledged")

    def replace_rules(self, rules: Iterable[Rule], now: float) -> list[Transition]:
        """Swap in a new rule set at once; nothing changes if ``rules`` is invalid (duplicate names).

        Alerts whose rule was removed, disabled, or now watches another metric or compares the other way
        end (resolved if firing, dropped if pending). The others carry on with the new severity, threshold
        and message, counting ``for`` from when they started.
        """
        new = _index(rules)
        with self._lock:
            old, self._rules = self._rules, new
            out: list[Transition] = []
            for current in list(self._active.values()):
                rule, before = new.get(current.rule), old.get(current.rule)
                if (
                    rule is None
                    or not rule.enabled
                    or rule.metric != current.metric
                    or (before is not None and before.op != rule.op)
                ):
                    out.append(self._end(current, now))
                    continue
                refreshed = _refresh(current, rule, current.last_value, now)
                if refreshed != current:
                    self._active[current.alert_id] = refreshed
                    out.append(Transition(refreshed, "updated"))
            return out

    def restore(self, alerts: Iterable[Alert]) -> int:
        """Adopt alerts persisted by an earlier engine (e.g. read back after a restart); returns how many.

        Active alerts whose rule is gone, disabled or watches another metric are skipped, as are ids already
        active here. Resolved ones join the history in the order they ended.
        """
        adopted = 0
        with self._lock:
            ended = []
            for alert in alerts:
                if not alert.active:
                    ended.append(alert)
                    continue
                rule = self._rules.get(alert.rule)
                if rule is None or not rule.enabled or rule.metric != alert.metric or alert.alert_id in self._active:
                    continue
                self._active[alert.alert_id] = alert
                adopted += 1
            for alert in sorted(ended, key=lambda a: a.ended_at or 0.0):
                self._history.append(alert)
                adopted += 1
        return adopted

    # -- the lifecycle ----------------------------------------------------------------------------------

    def _enabled(self, kind: str) -> list[Rule]:
        return [r for r in self._rules.values() if r.enabled and r.kind == kind]

    def _step(self, rule: Rule, node: str, value: float | None, now: float) -> Transition | None:
        key = alert_id(rule.name, node)
        current = self._active.get(key)
        if current is None:
            if value is None or not rule.holds(value):
                return None
            alert = Alert(
                rule=rule.name,
                node=node,
                metric=rule.metric,
                severity=rule.severity,
                state="pending",
                value=value,
                last_value=value,
                threshold=rule.threshold,
                message=rule.render(node, value, held_s=0.0, pending=rule.for_s > 0),
                started_at=now,
            )
            if rule.for_s <= 0:
                alert = replace(alert, state="firing", fired_at=now)
            self._active[key] = alert
            return Transition(alert, "fired" if alert.state == "firing" else "pending")
        if current.state == "pending":
            if value is None or not rule.holds(value):
                return self._end(current, now)
            if now - current.started_at >= rule.for_s:
                fired = replace(
                    _refresh(current, rule, value, now),
                    state="firing",
                    fired_at=now,
                    value=value,
                    message=rule.render(node, value, held_s=now - current.started_at),
                )
                self._active[key] = fired
                return Transition(fired, "fired")
        elif value is None or not rule.still_holds(value):
            return self._end(current, now, value)
        refreshed = _refresh(current, rule, value, now)
        if replace(refreshed, message=current.message) == current:
            return None  # a repeated value is not an update
        self._active[key] = refreshed
        return Transition(refreshed, "updated")

    def _end(self, current: Alert, now: float, value: float | None = None) -> Transition:
        del self._active[current.alert_id]
        if current.state == "pending":  # it never fired: no history, the store deletes it
            return Transition(current, "dropped")
        last = current.last_value if value is None else value
        resolved = replace(current, state="resolved", ended_at=now, last_value=last)
        self._history.append(resolved)
        return Transition(resolved, "resolved")


def _refresh(current: Alert, rule: Rule, value: float, now: float) -> Alert:
    # The record follows the rule's current severity, threshold and wording (rules can be replaced live);
    # its message keeps the triggering value, which is what a person reads first. A pending message names no
    # elapsed time; a firing one says how long the condition had held when it fired.
    pending = current.state == "pending"
    held = (now if pending or current.fired_at is None else current.fired_at) - current.started_at
    return replace(
        current,
        last_value=value,
        severity=rule.severity,
        threshold=rule.threshold,
        message=rule.render(current.node, current.value, held_s=held, pending=pending),
    )


def _collect(transitions: Iterable[Transition | None]) -> list[Transition]:
    return [t for t in transitions if t is not None]


def _index(rules: Iterable[Rule]) -> dict[str, Rule]:
    out: dict[str, Rule] = {}
    for rule in rules:
        if not isinstance(rule, Rule):
            raise RuleError(f"expected a Rule, got {type(rule).__name__}")
        if rule.name in out:
            raise RuleError("duplicate name: rule names must be unique", rule=rule.name)
        out[rule.name] = rule
    return out
