"""The shared vocabulary of clusternb, free of pandas: orders of statuses and severities, metric names,
duration syntax and the GPU summary. The agent, the alert rules and the CLI parser import only this, so a node
agent stays a small process. The orders and metric names are the field catalogue's (:mod:`clusternb.schema`),
re-exported here.
"""

from __future__ import annotations

import math
import re

from clusternb.model import NodeSnapshot
from clusternb.schema import ALERT_STATE_ORDER, HEALTH_ORDER, METRIC_NAMES, SEVERITY_ORDER, STATUS_ORDER

__all__ = ["ALERT_STATE_ORDER", "HEALTH_ORDER", "METRIC_NAMES", "SEVERITY_ORDER", "STATUS_ORDER"]

_UNITS = {
    "ms": 0.001, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_PART = r"(\d+(?:\.\d+)?)\s*(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")"
_DURATION_PART = re.compile(_PART)
_DURATION = re.compile(rf"(?:{_PART}\s*)+")


def _gpu_summary(s: NodeSnapshot) -> tuple[int, float, int | None, int | None, float]:
    if not s.gpus:
        return 0, math.nan, None, None, math.nan
    utils = [g.util_percent for g in s.gpus if g.util_percent is not None]
    used = [g.mem_used_bytes for g in s.gpus if g.mem_used_bytes is not None]
    total = [g.mem_total_bytes for g in s.gpus if g.mem_total_bytes is not None]
    temps = [g.temperature_c for g in s.gpus if g.temperature_c is not None]
    return (
        len(s.gpus),
        sum(utils) / len(utils) if utils else math.nan,
        sum(used) if used else None,
        sum(total) if total else None,
        max(temps) if temps else math.nan,
    )
