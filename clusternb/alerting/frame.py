"""Alerts as a pandas frame with exactly the documented :data:`clusternb.frames.ALERT_COLUMNS` schema."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from clusternb.alerting.records import Alert
from clusternb.dtypes import typed
from clusternb.frames import ALERT_COLUMNS, SEVERITY_ORDER


def alerts_frame(
    alerts: Iterable[Alert],
    active: bool = False,
    since: float | None = None,
    severity: str | None = None,
    node: str | None = None,
) -> pd.DataFrame:
    """One row per alert, newest (latest ``started_at``) first; columns: :data:`~clusternb.frames.ALERT_COLUMNS`.

    ``active``: only pending and firing alerts. ``since`` (epoch seconds; callers turn "1h" into one with
    :func:`clusternb.arguments.parse_time`): alerts that were active at some point after it, i.e. still active
    or ended at or after ``since``. ``severity``: exactly this severity. ``node``: only alerts about this
    node (or service). The frame is built fresh on every call, so mutating it changes nothing here.
    """
    if severity is not None and severity not in SEVERITY_ORDER:
        raise ValueError(f"severity: {severity!r} is not one of {SEVERITY_ORDER}")
    chosen = [
        a
        for a in alerts
        if (not active or a.active)
        and (since is None or a.ended_at is None or a.ended_at >= since)
        and (severity is None or a.severity == severity)
        and (node is None or a.node == node)
    ]
    chosen.sort(key=lambda a: a.alert_id)
    chosen.sort(key=lambda a: a.started_at, reverse=True)  # stable: ties stay in id order
    data = {
        "alert_id": [a.alert_id for a in chosen],
        "rule": [a.rule for a in chosen],
        "node": [a.node for a in chosen],
        "severity": [a.severity for a in chosen],
        "state": [a.state for a in chosen],
        "metric": [a.metric for a in chosen],
        "value": [a.value for a in chosen],
        "threshold": [a.threshold for a in chosen],
        "message": [a.message for a in chosen],
        "started_at": _times([a.started_at for a in chosen]),
        "fired_at": _times([a.fired_at for a in chosen]),
        "ended_at": _times([a.ended_at for a in chosen]),
        "acknowledged": [a.acknowledged for a in chosen],
    }
    return typed(data, ALERT_COLUMNS, pd.RangeIndex(len(chosen)))


def _times(seconds: list[float | None]) -> pd.DatetimeIndex:
    # Microsecond precision like clusternb.frames: float seconds carry no more, and round trips stay exact.
    micros = pd.array([None if s is None else round(s * 1e6) for s in seconds], dtype="Int64")
    return pd.to_datetime(micros, unit="us", utc=True).as_unit("ns")
