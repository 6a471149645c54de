"""clusternb: see and query the cluster you compute on, from Jupyter.

>>> import clusternb
>>> clusternb.workers()          # one row per node, a pandas DataFrame
>>> clusternb.metrics("30m")     # time series of every node
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusternb._version import __version__
from clusternb.config import ClusterNB, load_config
from clusternb.model import SCHEMA_VERSION, GPUStat, NodeSnapshot, SchemaError

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the same names come from _LAZY
    from clusternb.cache import cached
    from clusternb.columns import fields
    from clusternb.default import (
        acknowledge,
        alerts,
        cache_status,
        cluster_status,
        connect,
        get_client,
        kernels,
        metrics,
        workers,
    )
    from clusternb.queries import Client
    from clusternb.widgets.panel import alerts_panel, metrics_panel, panel, status_panel, workers_panel

# Every public name that loads on first use, and its module. pandas and pyarrow (clusternb.queries, ~0.4 s)
# and ipywidgets and plotly (clusternb.widgets.panel) load only when a query or a panel is first asked for, so
# `clusternb agent` (which imports this package) stays a small process and `import clusternb` stays quick
# (~0.06 s). The value is the module's own object: its signature, docstring and help() are the real ones.
_LAZY = {
    "Client": "clusternb.queries",
    "acknowledge": "clusternb.default",
    "alerts": "clusternb.default",
    "cache_status": "clusternb.default",
    "cluster_status": "clusternb.default",
    "connect": "clusternb.default",
    "get_client": "clusternb.default",
    "kernels": "clusternb.default",
    "metrics": "clusternb.default",
    "workers": "clusternb.default",
    "alerts_panel": "clusternb.widgets.panel",
    "metrics_panel": "clusternb.widgets.panel",
    "panel": "clusternb.widgets.panel",
    "status_panel": "clusternb.widgets.panel",
    "workers_panel": "clusternb.widgets.panel",
    "cached": "clusternb.cache",
    "fields": "clusternb.columns",
}


def __getattr__(name: str) -> Any:
    """PEP 562: import a name of :data:`_LAZY` on first use, then keep it as a plain attribute."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clusternb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Where Jupyter finds the server extension (``jpserver_extensions = {"clusternb": True}``)."""
    from clusternb.server.app import _jupyter_server_extension_points as points

    return points()


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where ``jupyter labextension develop`` finds the built JupyterLab extension (sources in ``src/``)."""
    return [{"src": "labextension", "dest": "clusternb-labextension"}]


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
    "fields",
    "get_client",
    "kernels",
    "load_config",
    "metrics",
    "metrics_panel",
    "panel",
    "status_panel",
    "workers",
    "workers_panel",
]
