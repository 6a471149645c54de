"""Alert rules: what a rule may watch, how it compares, and the built-in rules every cluster starts with.

A :class:`Rule` validates itself on construction, so a rule that exists is a rule the engine can evaluate:
the metric is known, the comparison is one of four, the clear threshold sits on the safe side of the
threshold and the message template renders. Everything wrong with a rule is reported as one
:class:`RuleError` naming the rule, because the person reading it is editing a config file.

Built-in rules (:data:`DEFAULT_RULES`); a user rule with the same name changes or disables one:

================  ======================  ===========  =====  =====  ========  ====================================
name              metric                  condition    for    clear  severity  why these numbers
================  ======================  ===========  =====  =====  ========  ====================================
cpu               cpu_percent             > 90         5m     80     warning   busy CPUs are the point of a cluster;
                                                                               only sustained saturation is news
memory            mem_used_percent        > 90         2m     85     warning   room left for a short peak
memory_critical   mem_used_percent        > 97         1m     95     critical  the OOM killer is near
disk              disk_used_percent       > 90         1m     85     warning   a big temp file may come and go
disk_critical     disk_used_percent       > 97         0      95     critical  writes fail within seconds: no wait
swap              swap_used_percent       > 50         5m     40     warning   sustained swapping kills throughput
gpu_temperature   gpu_temperature_c       > 85         1m     80     warning   cards throttle from the high 80s
node_offline      node_offline (silence)  > 0          0      0      critical  raised by whoever declares the node
                                                                               offline (offline_after already waited)
service_down      service_down (1 = down) >= 1         30s    1      critical  rides out a probe's single hiccup
kernel_memory     kernel_memory_percent   > 50         1m     40     warning   one notebook holding half a node is
                                                                               the OOM killer's likely pick; per kernel
================  ======================  ===========  =====  =====  ========  ====================================
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from clusternb.alerting.records import RULE_NAME_MAX, VALUE_MAX
from clusternb.alerting.templates import MessageFacts, render, template_problem
from clusternb.arguments import DURATION_MAX_S, shown
from clusternb.arguments import parse_duration as parse_duration_text
from clusternb.model import NodeSnapshot, record_fields
from clusternb.vocab import SEVERITY_ORDER, _gpu_summary


class RuleError(ValueError):
    """A rule (or a rules file) is invalid; the message names the rule, the file if any, and the problem.

    ``rule``, ``source`` and ``problem`` are kept apart as attributes for callers that show them separately.
    """

    def __init__(self, problem: str, rule: str | None = None, source: str | None = None) -> None:
        self.problem = problem
        self.rule = rule
        self.source = source
        where = f"rule {shown(rule)}" if rule is not None else "rules"
        if source:
            where += f" in {source}"
        super().__init__(f"{where}: {problem}")


Op = Literal[">", ">=", "<", "<="]

#: The comparisons a rule may use. ``op(value, threshold)`` true means "the condition holds".
OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
}

#: Metrics that are not read from a snapshot: the caller feeds them through their own engine method.
NODE_OFFLINE: Final = "node_offline"
SERVICE_DOWN: Final = "service_down"
#: A kernel's memory (its process and children, PSS) as a percent of its node's container limit, else of its
#: memory: evaluated per kernel by the server that runs it, the alert's subject is :func:`kernel_subject`.
KERNEL_MEMORY: Final = "kernel_memory_percent"


def kernel_subject(node: str, kernel_id: str) -> str:
    """What a kernel alert is about: the node and the kernel (its id's first 8 characters, as Jupyter shows it).
    No notebook path: alerts are seen by every user of the cluster, paths only by their owner."""
    return f"{node}/kernel-{kernel_id[:8]}"


_NAME = re.compile(r"[A-Za-z0-9_.\-]+")  # no ':' so that alert ids "rule:node" split unambiguously
_DURATION_TEXT_MAX = 64  # "1h30m" is 5 characters; a longer text is not a duration anyone wrote
_NOT_METRICS = {"time", "schema"}  # numeric, but an alert on them would be about the sampler, not the node
_NUMERIC_TYPES = {"int", "float", "int | None", "float | None"}


def _field_getter(name: str) -> Callable[[NodeSnapshot], float | None]:
    def get(s: NodeSnapshot) -> float | None:
        value = getattr(s, name)
        return None if value is None else float(value)

    return get


def _gpu_getter(position: int) -> Callable[[NodeSnapshot], float | None]:
    # frames._gpu_summary is the one definition of "GPU temperature" (hottest) and "GPU utilisation" (mean),
    # so the alert and the workers() column can never disagree.
    def get(s: NodeSnapshot) -> float | None:
        value = _gpu_summary(s)[position]
        return None if value is None else float(value)

    return get


def _gpu_mem_used_percent(s: NodeSnapshot) -> float | None:
    _, _, used, total, _ = _gpu_summary(s)
    if used is None or not total:
        return None
    return 100.0 * used / total


def _snapshot_metrics() -> dict[str, Callable[[NodeSnapshot], float | None]]:
    table = {
        f.name: _field_getter(f.name)
        for f in record_fields(NodeSnapshot)
        if f.type in _NUMERIC_TYPES and f.name not in _NOT_METRICS
    }
    for prop in ("mem_used_percent", "swap_used_percent", "disk_used_percent"):
        table[prop] = _field_getter(prop)
    table["gpu_util_percent"] = _gpu_getter(1)
    table["gpu_temperature_c"] = _gpu_getter(4)
    table["gpu_mem_used_percent"] = _gpu_mem_used_percent
    return dict(sorted(table.items()))


#: Metrics read from a :class:`NodeSnapshot`, each with the function that reads it (``None``: no data).
SNAPSHOT_METRICS: Final = _snapshot_metrics()

#: Every metric a rule may name, sorted.
METRICS: Final = tuple(sorted([*SNAPSHOT_METRICS, NODE_OFFLINE, SERVICE_DOWN, KERNEL_MEMORY]))


def metric_value(snapshot: NodeSnapshot, metric: str) -> float | None:
    """The value of a snapshot metric, or ``None`` when the node does not report it (no GPU, no limit, NaN)."""
    value = SNAPSHOT_METRICS[metric](snapshot)
    return value if value is not None and math.isfinite(value) else None


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``2.5``, ``"90"``, ``"30s"``, ``"2m"`` or ``"1h30m"``; raises ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"duration must be a number of seconds or a string like '2m', got {value!r}")
    if isinstance(value, int | float):
        seconds = _as_float(value)
    elif isinstance(value, str):
        seconds = _text_seconds(value)
    else:
        raise ValueError(f"duration must be a number of seconds or a string like '2m', got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be finite and >= 0, got {shown(value)}")
    return seconds


def _text_seconds(value: str) -> float:
    """A rules file's duration text: a number of seconds, or a duration in the one grammar of
    :func:`clusternb.arguments.parse_duration` (which also refuses one longer than any window)."""
    text = value.strip()
    unknown = f"could not understand duration {shown(value)}; use e.g. 30, '30s', '2m', '1h'"
    if len(text) > _DURATION_TEXT_MAX:
        raise ValueError(unknown)
    with contextlib.suppress(ValueError):
        return float(text)
    seconds = parse_duration_text("for", text)
    if seconds is None:
        raise ValueError(unknown)
    return seconds


def _as_float(number: float) -> float:
    try:
        return float(number)
    except OverflowError:  # an int past float range, e.g. 10**400 from a Python config file
        return math.inf


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule: "``metric op threshold`` for ``for_s`` seconds raises an alert of ``severity``".

    ``clear`` adds hysteresis: a firing alert stays firing while ``op(value, clear)`` still holds, so a value
    hovering between ``clear`` and ``threshold`` cannot make it flap. It defaults to ``threshold`` and must not
    sit beyond it (for ``>`` rules: ``clear <= threshold``), or the alert would resolve while still firing.
    """

    name: str
    metric: str
    op: Op
    threshold: float
    for_s: float = 0.0
    clear: float | None = None
    severity: str = "warning"
    message: str = "{rule} on {node}: {metric} is {value:.4g} (threshold {threshold:.4g})"
    enabled: bool = True

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise RuleError(problem, rule=self.name if isinstance(self.name, str) else shown(self.name))
        # Normalised once, here, so the engine never has to ask "is there a clear threshold?".
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "for_s", float(self.for_s))
        object.__setattr__(self, "clear", float(self.threshold if self.clear is None else self.clear))

    def _problem(self) -> str | None:
        return self._watch_problem() or self._numbers_problem() or self._clear_side_problem() or self._say_problem()

    def _watch_problem(self) -> str | None:
        """What the rule is called, watches and how it compares."""
        if not isinstance(self.name, str) or len(self.name) > RULE_NAME_MAX or not _NAME.fullmatch(self.name):
            return f"name must be 1 to {RULE_NAME_MAX} letters, digits, '_', '-' or '.' (no ':' or spaces)"
        if self.metric not in METRICS:
            return f"unknown metric {shown(self.metric)}; allowed: {', '.join(METRICS)}"
        if not isinstance(self.op, str) or self.op not in OPS:
            return f"unknown op {shown(self.op)}; use one of {', '.join(OPS)}"
        return None

    def _numbers_problem(self) -> str | None:
        """Bounded like the alert records that carry them, so every alert a rule raises can be read back."""
        checks = [("threshold", self.threshold, -VALUE_MAX, VALUE_MAX), ("for", self.for_s, 0, DURATION_MAX_S)]
        if self.clear is not None:
            checks.insert(1, ("clear", self.clear, -VALUE_MAX, VALUE_MAX))
        for label, number, lo, hi in checks:
            if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(_as_float(number)):
                return f"{label} must be a finite number, got {shown(number)}"
            if not lo <= number <= hi:
                return f"{label} must be between {lo:g} and {hi:g}, got {shown(number)}"
        return None

    def _clear_side_problem(self) -> str | None:
        """A clear threshold beyond the threshold would resolve an alert while its condition still holds."""
        if self.clear is None:
            return None
        above = self.op in (">", ">=")
        if (above and self.clear > self.threshold) or (not above and self.clear < self.threshold):
            side = "<=" if above else ">="
            return (
                f"clear {self.clear!r} is on the wrong side of threshold {self.threshold!r}: "
                f"a rule with op {self.op!r} needs clear {side} threshold"
            )
        return None

    def _say_problem(self) -> str | None:
        """How an alert is shown: its severity, whether the rule is on, its message template."""
        if self.severity not in SEVERITY_ORDER:
            return f"unknown severity {shown(self.severity)}; use one of {', '.join(SEVERITY_ORDER)}"
        if not isinstance(self.enabled, bool):
            return f"enabled must be true or false, got {shown(self.enabled)}"
        return template_problem(self.message)

    @property
    def clear_at(self) -> float:
        """The clear threshold as a float (``clear`` is always set after construction)."""
        return self.threshold if self.clear is None else self.clear

    @property
    def kind(self) -> Literal["node", "offline", "service", "kernel"]:
        """Which engine entry point evaluates this rule."""
        if self.metric == NODE_OFFLINE:
            return "offline"
        if self.metric == SERVICE_DOWN:
            return "service"
        if self.metric == KERNEL_MEMORY:
            return "kernel"
        return "node"

    def holds(self, value: float | None) -> bool:
        """The condition holds: a new alert starts (or a pending one keeps counting)."""
        return value is not None and OPS[self.op](value, self.threshold)

    def still_holds(self, value: float | None) -> bool:
        """A firing alert stays firing: the value has not crossed back over the clear threshold."""
        return value is not None and OPS[self.op](value, self.clear_at)

    def render(self, node: str, value: float, *, held_s: float | None = None, pending: bool = False) -> str:
        """The alert message for ``node`` at ``value``, the condition having held ``held_s`` seconds.

        ``pending``: it has not fired yet. Without ``held_s``, as when the alert fires on time (after ``for``).
        ``node`` is data (it came from the network): it is passed to the template, never read as one.
        """
        facts = MessageFacts(
            node=node,
            value=value,
            threshold=self.threshold,
            metric=self.metric,
            rule=self.name,
            op=self.op,
            wait_s=self.for_s,
            held_s=self.for_s if held_s is None else held_s,
            pending=pending,
        )
        return render(self.message, facts)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in the same shape :func:`~clusternb.alerting.load_rules` reads."""
        return asdict(self)


DEFAULT_RULES: Final[tuple[Rule, ...]] = (
    Rule("cpu", "cpu_percent", ">", 90, for_s=300, clear=80, severity="warning",
         message="CPU on {node} {direction} {threshold:g}% {held}: at {value:.0f}%"),
    Rule("memory", "mem_used_percent", ">", 90, for_s=120, clear=85, severity="warning",
         message="memory on {node} {direction} {threshold:g}% {held}: at {value:.1f}%"),
    Rule("memory_critical", "mem_used_percent", ">", 97, for_s=60, clear=95, severity="critical",
         message="memory on {node} {direction} {threshold:g}% {held}: at {value:.1f}%, processes risk being killed"),
    Rule("disk", "disk_used_percent", ">", 90, for_s=60, clear=85, severity="warning",
         message="disk on {node} {direction} {threshold:g}% {held}: at {value:.1f}%"),
    Rule("disk_critical", "disk_used_percent", ">", 97, for_s=0, clear=95, severity="critical",
         message="disk on {node} at {value:.1f}%: writes will fail soon"),
    Rule("swap", "swap_used_percent", ">", 50, for_s=300, clear=40, severity="warning",
         message="swap on {node} {direction} {threshold:g}% {held}: at {value:.0f}%"),
    Rule("gpu_temperature", "gpu_temperature_c", ">", 85, for_s=60, clear=80, severity="warning",
         message="hottest GPU on {node} {direction} {threshold:g} °C {held}: at {value:.0f} °C"),
    Rule("node_offline", NODE_OFFLINE, ">", 0, for_s=0, severity="critical",
         message="node {node} went offline (silent for {value:.0f}s)"),
    Rule("service_down", SERVICE_DOWN, ">=", 1, for_s=30, severity="critical",
         message="service {node} is down"),
    Rule("kernel_memory", KERNEL_MEMORY, ">", 50, for_s=60, clear=40, severity="warning",
         message="{node} holds {value:.0f}% of its node's memory ({direction} {threshold:g}% {held}): a runaway "
                 "notebook is the process the OOM killer is likely to pick; see kernels()"),
)  # fmt: skip
