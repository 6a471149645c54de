"""clusternb: see and query the cluster you compute on, from Jupyter.

>>> import clusternb
>>> clusternb.workers()          # one row per node, a pandas DataFrame
>>> clusternb.metrics("30m")     # time series of every node
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from clusternb._version import __version__
from clusternb.config import ClusterNB, load_config
from clusternb.model import SCHEMA_VERSION, GPUStat, NodeSnapshot, SchemaError
from clusternb.widgets.api import alerts_panel, metrics_panel, panel, status_panel, workers_panel

if TYPE_CHECKING:
    import pandas as pd

    from clusternb.cache import cached
    from clusternb.queries import Client, connect, get_client

# pandas, pyarrow and the query machinery load on first use, so `clusternb agent` (which imports this
# package) stays a small process and `import clusternb` stays quick.
_LAZY = {
    "Client": "clusternb.queries",
    "connect": "clusternb.queries",
    "get_client": "clusternb.queries",
    "cached": "clusternb.cache",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clusternb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Where Jupyter finds the server extension (``jpserver_extensions = {"clusternb": True}``)."""
    from clusternb.server.app import _jupyter_server_extension_points as points

    return points()


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "SCHEMA_VERSION",
    "Client",
    "ClusterNB",
    "GPUStat",
    "NodeSnapshot",
    "SchemaError",
    "__version__",
    "acknowledge",
    "alerts",
    "alerts_panel",
    "cache_status",
    "cached",
    "cluster_status",
    "connect",
    "get_client",
    "load_config",
    "metrics",
    "metrics_panel",
    "panel",
    "status_panel",
    "workers",
    "workers_panel",
]


def cluster_status() -> pd.DataFrame:
    """One-row cluster summary: node counts by status, CPU/memory totals and use, health."""
    from clusternb.queries import get_client

    return get_client().cluster_status()


def workers() -> pd.DataFrame:
    """One row per node, indexed by node name (see README for the columns)."""
    from clusternb.queries import get_client

    return get_client().workers()


def metrics(
    since: Any = "15m",
    until: Any = None,
    node: str | Sequence[str] | None = None,
    fields: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Time series, one row per node per sample: ``metrics("1h", node="gpu-3", fields=["cpu_percent"])``."""
    from clusternb.queries import get_client

    return get_client().metrics(since=since, until=until, node=node, fields=fields)


def alerts(
    active: bool = True, since: Any = None, severity: str | None = None, node: str | None = None
) -> pd.DataFrame:
    """Alerts as a DataFrame, newest first."""
    from clusternb.queries import get_client

    return get_client().alerts(active=active, since=since, severity=severity, node=node)


def cache_status() -> pd.DataFrame:
    """The query cache: active backend (redis/memory), Redis health, hits, misses and timings per namespace."""
    from clusternb.queries import get_client

    return get_client().cache_status()


def acknowledge(alert_id: str, by: str | None = None) -> None:
    """Acknowledge an active alert by its id (the ``alert_id`` column of :func:`alerts`)."""
    from clusternb.queries import get_client

    get_client().acknowledge(alert_id, by=by)
