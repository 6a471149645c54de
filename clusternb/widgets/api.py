"""The public panel factories, ``clusternb.panel()`` and the small panels it is made of, imported lazily.

These wrappers import ipywidgets and plotly only when a panel is first made, so ``import clusternb`` stays
fast in scripts, agents and the server extension that never show a widget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clusternb.queries import Client
    from clusternb.widgets.panel import Panel

__all__ = ["alerts_panel", "metrics_panel", "panel", "status_panel", "workers_panel"]


def panel(
    interval: float = 3.0,
    since: Any = "15m",
    fields: Sequence[str] | None = None,
    client: Client | None = None,
    top_k: int = 10,
) -> Panel:
    """The live cluster panel: header, workers table, CPU/memory/network charts, active alerts."""
    from clusternb.widgets import panel as _panel

    return _panel.panel(interval=interval, since=since, fields=fields, client=client, top_k=top_k)


def status_panel(interval: float = 3.0, client: Client | None = None) -> Panel:
    """Live health, node counts, use, "as of" and cache backend."""
    from clusternb.widgets import panel as _panel

    return _panel.status_panel(interval=interval, client=client)


def workers_panel(interval: float = 3.0, client: Client | None = None) -> Panel:
    """A live workers table."""
    from clusternb.widgets import panel as _panel

    return _panel.workers_panel(interval=interval, client=client)


def metrics_panel(
    since: Any = "15m",
    fields: Sequence[str] | None = None,
    interval: float = 3.0,
    client: Client | None = None,
    top_k: int = 10,
) -> Panel:
    """Live charts of ``metrics(since, fields=...)``: one per field (default CPU, memory, network)."""
    from clusternb.widgets import panel as _panel

    return _panel.metrics_panel(since=since, fields=fields, interval=interval, client=client, top_k=top_k)


def alerts_panel(interval: float = 3.0, client: Client | None = None) -> Panel:
    """A live list of active alerts."""
    from clusternb.widgets import panel as _panel

    return _panel.alerts_panel(interval=interval, client=client)
