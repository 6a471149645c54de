"""Panel sections: one widget each, the queries it needs, and a re-render only when its data changed.

Change is detected twice, cheapest first. (1) The content hashes of the section's query results: equal hashes
mean nothing to do, not even rendering. (2) A digest of the rendered view (HTML string or trace dicts): a
query result can change without changing what the section shows (``as_of`` and ``age_s`` move with the
clock), and then nothing is sent either. Only a changed view reaches the widget, in one batch: ``hold_sync``
for HTML widgets, ``batch_update`` for figures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import ipywidgets
import numpy as np
import orjson
import pandas as pd
import plotly.graph_objects as go

from clusternb.queries import Client, QueryResult
from clusternb.widgets import charts, views
from clusternb.widgets.poller import Query, Results


def digest(view: Any) -> str:
    """A stable digest of a rendered view (JSON-able). orjson, not json: three charts' traces are thousands of
    values, and the stdlib encoder made the digest a tenth of a change tick."""
    data = orjson.dumps(view, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def cache_backend(client: Client) -> str:
    """The active cache backend's name ("redis", "memory"), read without touching the network."""
    return client.cache.backend.active.name


class Section:
    """Base class: subclasses set ``title``, ``queries`` and implement ``render`` and ``_send``."""

    title = ""
    queries: tuple[Query, ...] = ()

    def __init__(self) -> None:
        self._seen: tuple[str, ...] | None = None
        self._sent: str | None = None
        self.renders = 0
        self.sends = 0

    @property
    def view(self) -> ipywidgets.Widget:
        """The widget shown in the panel."""
        raise NotImplementedError

    def values(self, results: Results) -> list[Any]:
        """The section's query values, raising the first query error (the panel shows it)."""
        out = []
        for query in self.queries:
            result = results[query]
            if isinstance(result, Exception):
                raise result
            out.append(result.value)
        return out

    def update(self, results: Results, client: Client) -> bool:
        """Re-render if the query hashes changed, send if the view changed. True when something was sent."""
        found = [results[q] for q in self.queries]
        hashes = tuple(r.content_hash if isinstance(r, QueryResult) else "error" for r in found)
        if hashes == self._seen:
            return False
        view = self.render(self.values(results), client)
        self.renders += 1
        self._seen = hashes
        key = digest(view)
        if key == self._sent:
            return False
        self._send(view)
        self._sent = key
        self.sends += 1
        return True

    def render(self, values: list[Any], client: Client) -> Any:
        raise NotImplementedError

    def static_html(self, results: Results, client: Client) -> str:
        """This section as plain HTML for the no-widget snapshot."""
        return str(self.render(self.values(results), client))

    def _send(self, view: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.view.close()


class HTMLSection(Section):
    """A section drawn as one HTML widget."""

    def __init__(self) -> None:
        super().__init__()
        self.widget = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))

    @property
    def view(self) -> ipywidgets.Widget:
        return self.widget

    def _send(self, view: Any) -> None:
        with self.widget.hold_sync():
            self.widget.value = str(view)


class HeaderSection(HTMLSection):
    """Health, node counts, use, "as of" and the cache backend."""

    title = "Cluster"
    queries = (Query.of("cluster"),)

    def render(self, values: list[Any], client: Client) -> str:
        return views.header_html(values[0], cache_backend(client))


class WorkersSection(HTMLSection):
    """The workers table."""

    title = "Workers"
    queries = (Query.of("workers"),)

    def render(self, values: list[Any], client: Client) -> str:
        return views.section_title(self.title) + views.workers_html(values[0])


class KernelsSection(HTMLSection):
    """Jupyter kernels of every server, largest memory first: which notebook is using the machine."""

    title = "Kernels"
    queries = (Query.of("kernels"),)

    def render(self, values: list[Any], client: Client) -> str:
        return views.section_title(self.title) + views.kernels_html(values[0])


class AlertsSection(HTMLSection):
    """Active alerts."""

    title = "Active alerts"
    queries = (Query.of("alerts", active=True),)

    def render(self, values: list[Any], client: Client) -> str:
        return views.section_title(self.title) + views.alerts_html(values[0])


class ChartSection(Section):
    """One metric as a ``go.FigureWidget``; every chart of a panel shares one ``metrics()`` query."""

    def __init__(self, spec: charts.ChartSpec, since: Any, fields: Sequence[str], top_k: int = charts.TOP_K) -> None:
        super().__init__()
        self.spec = spec
        self.title = spec.title
        self.top_k = top_k
        self.queries = (Query.of("metrics", since=since, fields=tuple(fields)),)
        self.figure = go.FigureWidget(layout=charts.layout(spec))
        self._traces: list[dict[str, Any]] = []

    @property
    def view(self) -> ipywidgets.Widget:
        return self.figure

    def render(self, values: list[Any], client: Client) -> dict[str, Any]:
        frame = values[0]
        assert isinstance(frame, pd.DataFrame)
        traces = charts.traces(frame, self.spec, top_k=self.top_k)
        return {"traces": traces, "ranges": charts.axis_ranges(traces, self.spec)}

    def static_html(self, results: Results, client: Client) -> str:
        traces = self.render(self.values(results), client)["traces"]
        return f'<div style="display:inline-block;margin:4px 8px 0 0">{charts.svg(traces, self.spec)}</div>'

    def _send(self, view: Any) -> None:
        new: list[dict[str, Any]] = view["traces"]
        fig = self.figure
        if _shape(new) != _shape(self._traces):
            # Nodes joined or left, or the many-node view switched on: rebuild the trace list (rare).
            fig.data = ()
            fig.add_traces(new)
            self._traces = [{}] * len(new)  # so the batch below sends nothing more for the traces
        with fig.batch_update():
            for trace, old, fresh in zip(fig.data, self._traces, new, strict=True):
                changed = {k: _array(v) for k, v in fresh.items() if old and old.get(k) != v}
                if changed:
                    trace.update(changed)
            fig.update_layout(view["ranges"])
        self._traces = new


def _array(value: Any) -> Any:
    """A data list (``x``, ``y``) as a numpy object array: plotly then takes it whole instead of checking and
    serialising it value by value (a third of a chart's update), and sends the very same JSON list."""
    return np.array(value, dtype=object) if isinstance(value, list) else value


def _shape(traces: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What cannot be restyled in place cheaply: the number of traces and their kind (line or band edge)."""
    return [(t.get("fill"), t.get("showlegend")) for t in traces]
