"""The live panels: ``panel()`` and the small ones it is made of, each a ``VBox`` of sections plus controls.

A panel draws itself once when created (so it is never blank), then registers with the kernel's one poller
(:mod:`clusternb.widgets.poller`), which hands it query results every ``interval`` seconds; sections send
only what changed. The toolbar pauses/resumes and sets the interval; ``interval``/``pause()``/``resume()``
do the same in code. ``interval`` and ``paused`` are traits of the panel, the one place they are kept: the toolbar
controls are linked to them, and observers re-plan the poller and redraw the status line. ``close()`` (or closing
the widget) unregisters it; the last panel closed stops the thread.

Where no widget front end exists (a terminal, a plain script), the widget's comm is ``comm.DummyComm``: the
panel then never registers (no thread for nobody), and its repr is a static snapshot. Every repr carries that
snapshot as ``text/html`` and ``text/plain`` next to the widget view: JupyterLab prefers the widget view, while
nbconvert skips a widget view without stored widget state and falls back to the HTML.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Sequence
from typing import Any

import comm
import ipywidgets
import traitlets

from clusternb import arguments, units
from clusternb.default import get_client
from clusternb.frames import check_fields
from clusternb.queries import Client
from clusternb.widgets import charts, views
from clusternb.widgets.poller import Poller, Query, Results, check_interval, get_poller
from clusternb.widgets.sections import (
    AlertsSection,
    ChartSection,
    HeaderSection,
    KernelsSection,
    Section,
    WorkersSection,
)

DEFAULT_INTERVAL = 3.0
INTERVAL_CHOICES = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


class Panel(ipywidgets.VBox):  # type: ignore[misc]
    """Sections stacked above a toolbar (pause, interval, status line)."""

    # Kernel-side state (not synced: the front end sees it through the toolbar widgets linked below).
    interval: traitlets.TraitType[float, Any] = traitlets.TraitType(
        DEFAULT_INTERVAL, help="Seconds between two checks for new data."
    )
    paused = traitlets.Bool(False, help="Whether the poller skips this panel (``refresh()`` still works).")

    def __init__(
        self,
        sections: Sequence[Section],
        interval: float = DEFAULT_INTERVAL,
        client: Client | None = None,
        poller: Poller | None = None,
    ) -> None:
        interval = check_interval(interval)  # before any widget exists
        if client is not None and not isinstance(client, Client):
            raise arguments.ArgumentTypeError("client", f"expected a clusternb.Client, got {arguments.shown(client)}")
        self.sections = list(sections)
        self._closed = False
        self._error: str | None = None
        self._client = client
        self._poller = poller or get_poller()
        # The cell creating the panel: updates from the poller thread keep its parent header (ipykernel 7).
        self._context = contextvars.copy_context()
        self._lock = threading.RLock()
        self.status_line = ipywidgets.HTML(layout=ipywidgets.Layout(flex="1 1 auto"))
        self.pause_button = ipywidgets.ToggleButton(
            tooltip="Stop or resume updating this panel", layout=ipywidgets.Layout(width="90px")
        )
        self.interval_picker = ipywidgets.Dropdown(
            options=_choices(interval), value=interval, description="every (s)",
            style={"description_width": "initial"}, layout=ipywidgets.Layout(width="140px"),
        )  # fmt: skip
        toolbar = ipywidgets.HBox(
            [self.pause_button, self.interval_picker, self.status_line],
            layout=ipywidgets.Layout(align_items="center", margin="4px 0 0 0"),
        )
        super().__init__(children=[*_arrange(self.sections), toolbar], interval=interval)
        traitlets.link((self, "paused"), (self.pause_button, "value"))
        traitlets.dlink((self, "paused"), (self.pause_button, "description"), lambda p: "Resume" if p else "Pause")
        traitlets.dlink((self, "paused"), (self.pause_button, "icon"), lambda p: "play" if p else "pause")
        traitlets.link((self, "interval"), (self.interval_picker, "value"), (self._offered, float))
        self.add_class("clusternb-panel")
        self.layout.border = "1px solid #e0e0e0"
        self.layout.padding = "4px 8px"
        self._show_status()
        self._poller.refresh(self)  # first paint now, in this cell
        self.live = not isinstance(self.comm, comm.DummyComm)
        if self.live:
            self._poller.register(self)

    # -- the poller's side (see poller.Subscriber) ---------------------------------------------------------

    @property
    def context(self) -> contextvars.Context:
        return self._context

    def client(self) -> Client:
        """The explicit client, else the current default one (so ``clusternb.connect()`` later is followed)."""
        return self._client if self._client is not None else get_client()

    def queries(self) -> set[Query]:
        return {q for s in self.sections for q in s.queries}

    def apply(self, results: Results) -> int:
        """Update every section from one tick's results; errors go to the status line. Returns sections sent."""
        with self._lock:
            if self._closed:
                return 0
            sent, errors = 0, []
            client = self.client()
            for section in self.sections:
                try:
                    sent += section.update(results, client)
                except Exception as exc:
                    errors.append(f"{section.title}: {type(exc).__name__}: {exc}")
            self._set_error("; ".join(errors) or None)
            return sent

    def report_error(self, error: BaseException) -> None:
        with self._lock:
            if not self._closed:
                self._set_error(f"{type(error).__name__}: {error}")

    # -- controls -------------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop updating (the poller skips this panel; other panels go on)."""
        self.paused = True

    def resume(self) -> None:
        """Update again, starting with a check now."""
        self.paused = False

    def refresh(self) -> int:
        """Check for new data now, even when paused. Returns how many sections sent an update."""
        return self._poller.refresh(self).updated

    def close(self) -> None:
        """Stop this panel's work and close its widgets. The last panel closed stops the poller thread."""
        if "_lock" not in self.__dict__:  # __init__ refused its arguments (ipywidgets' __del__ still calls close)
            return
        with self._lock:
            if self._closed:
                super().close()
                return
            self._closed = True
        self._poller.unregister(self)
        for section in self.sections:
            section.close()
        for widget in (self.status_line, self.pause_button, self.interval_picker):
            widget.close()
        for child in self.children:
            child.close()
        super().close()

    @property
    def closed(self) -> bool:
        return self._closed

    @traitlets.validate("interval")
    def _check_interval(self, proposal: traitlets.Bunch) -> float:
        return check_interval(proposal["value"])

    @traitlets.observe("interval")
    def _interval_changed(self, change: traitlets.Bunch) -> None:
        self._show_status()
        self._poller.reschedule(self)

    @traitlets.observe("paused")
    def _paused_changed(self, change: traitlets.Bunch) -> None:
        self._show_status()
        if not change["new"]:
            self._poller.reschedule(self, due=0.0)

    def _offered(self, interval: float) -> float:
        """``interval``, once the picker offers it. The link calls this while it holds back the picker's echo, so
        new options (which select their first entry) never reach ``interval``."""
        choices = _choices(interval)
        if tuple(self.interval_picker.options) != tuple(choices):
            self.interval_picker.options = choices
        return interval

    def _set_error(self, error: str | None) -> None:
        if error != self._error:
            self._error = error
            self._show_status()

    def _show_status(self) -> None:
        state = "closed" if self._closed else "paused" if self.paused else "live"
        html = views.status_line_html(state, self.interval, self._error)
        if self.status_line.value != html:
            self.status_line.value = html

    # -- reprs ------------------------------------------------------------------------------------------------

    def snapshot_html(self) -> str:
        """The panel's current data as static HTML (what nbconvert and plain HTML viewers show)."""
        results, client = self._results_now()
        parts = []
        for section in self.sections:
            try:
                parts.append(section.static_html(results, client))
            except Exception as exc:
                parts.append(f"<div>{views.esc(section.title)}: {views.esc(f'{type(exc).__name__}: {exc}')}</div>")
        return views.static_snapshot(parts, "static snapshot: open in JupyterLab for the live panel")

    def snapshot_text(self) -> str:
        """One line per section: what a terminal shows."""
        results, _ = self._results_now()
        lines = [f"clusternb panel ({'paused' if self.paused else 'live'}, every {self.interval:g} s)"]
        for section in self.sections:
            try:
                values = section.values(results)
            except Exception as exc:
                lines.append(f"  {section.title}: {type(exc).__name__}: {exc}")
                continue
            lines.append(f"  {section.title}: {_summary(section, values)}")
        return "\n".join(lines)

    def _results_now(self) -> tuple[Results, Client]:
        client = self.client()
        results: dict[Query, Any] = {}
        for query in self.queries():
            try:
                results[query] = query.run(client)
            except Exception as exc:
                results[query] = exc
        return results, client

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = self.snapshot_text()
        bundle["text/html"] = self.snapshot_html()
        return bundle


def _summary(section: Section, values: list[Any]) -> str:
    frame = values[0]
    if isinstance(section, HeaderSection) and len(frame):
        row = frame.iloc[0]
        total = int(row["nodes_total"])
        return (
            f"{row['health']}, {int(row['nodes_online'])}/{total} {units.noun(total, 'node')} online, "
            f"CPU {units.percent(row['cpu_percent'])}, memory {units.percent(row['mem_used_percent'])}, "
            f"as of {units.clock(row['newest_sample'])}"
        )
    if isinstance(section, ChartSection):
        nodes = frame["node"].nunique() if len(frame) else 0
        return f"{units.count(nodes, 'node')}, {units.count(len(frame), 'sample')}"
    return units.count(len(frame), "row")


def _choices(current: float) -> list[tuple[str, float]]:
    values = sorted({*INTERVAL_CHOICES, current})
    return [(f"{v:g}", v) for v in values]


def _arrange(sections: list[Section]) -> list[ipywidgets.Widget]:
    """Charts side by side (wrapping when the window is narrow), everything else full width, in order."""
    out: list[ipywidgets.Widget] = []
    row: list[ipywidgets.Widget] = []
    for section in [*sections, None]:
        if isinstance(section, ChartSection):
            row.append(section.view)
            continue
        if row:
            box = ipywidgets.Layout(flex_flow="row wrap", width="100%", grid_gap="4px 12px")
            out.append(ipywidgets.HBox(row, layout=box))
            row = []
        if section is not None:
            out.append(section.view)
    return out


# -- the public factories --------------------------------------------------------------------------------------


def status_sections() -> list[Section]:
    return [HeaderSection()]


def workers_sections() -> list[Section]:
    return [WorkersSection()]


def kernels_sections() -> list[Section]:
    return [KernelsSection()]


def metrics_sections(since: Any, fields: Sequence[str] | None, top_k: int) -> list[Section]:
    """One chart per field; ``since`` and ``top_k`` are checked here, before any widget exists."""
    arguments.parse_time(since, time.time(), "since")
    arguments.integer("top_k", top_k, 1, charts.TOP_K_MAX)
    chosen = check_fields(fields) if fields is not None else None
    specs = list(charts.DEFAULT_CHARTS) if chosen is None else [charts.spec_for_field(f) for f in chosen]
    columns = tuple(dict.fromkeys(c for spec in specs for c in spec.columns))
    return [ChartSection(spec, since, columns, top_k) for spec in specs]


def alerts_sections() -> list[Section]:
    return [AlertsSection()]


def panel(
    interval: float = DEFAULT_INTERVAL,
    since: Any = "15m",
    fields: Sequence[str] | None = None,
    client: Client | None = None,
    top_k: int = charts.TOP_K,
) -> Panel:
    """The whole picture: header, workers table, CPU/memory/network charts, Jupyter kernels, active alerts. Live
    in JupyterLab."""
    check_interval(interval)  # before any widget is made
    charts_ = metrics_sections(since, fields, top_k)
    sections = [*status_sections(), *workers_sections(), *charts_, *kernels_sections(), *alerts_sections()]
    return Panel(sections, interval=interval, client=client)


def status_panel(interval: float = DEFAULT_INTERVAL, client: Client | None = None) -> Panel:
    """Health, node counts, CPU and memory use, "as of" and the cache backend."""
    return Panel(status_sections(), interval=interval, client=client)


def workers_panel(interval: float = DEFAULT_INTERVAL, client: Client | None = None) -> Panel:
    """The workers table, one row per node."""
    return Panel(workers_sections(), interval=interval, client=client)


def metrics_panel(
    since: Any = "15m",
    fields: Sequence[str] | None = None,
    interval: float = DEFAULT_INTERVAL,
    client: Client | None = None,
    top_k: int = charts.TOP_K,
) -> Panel:
    """One live chart per field (default CPU, memory, network); top-k lines plus a band at 100+ nodes."""
    check_interval(interval)  # before any widget is made
    return Panel(metrics_sections(since, fields, top_k), interval=interval, client=client)


def alerts_panel(interval: float = DEFAULT_INTERVAL, client: Client | None = None) -> Panel:
    """Active alerts, newest first."""
    return Panel(alerts_sections(), interval=interval, client=client)
