"""How each query of a :class:`~clusternb.queries.Client` is built: its arguments checked now, its frame computed
later (in the cache's ``get_or_compute``, only on a miss).

Each builder returns ``(key_params, compute)``: the checked arguments as the cache key's part (relative windows
as given, so "15m" shares one entry per freshness bucket) and a function that computes the frame. Checking
first means bad input raises at once, whether the answer is cached or not, and is never cached. A mixin of
:class:`~clusternb.queries.Client`, kept apart so the client file holds its lifecycle and public API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from clusternb import arguments, frames
from clusternb.alerting.frame import alerts_frame
from clusternb.params import check_arguments
from clusternb.state import rollup

if TYPE_CHECKING:
    from clusternb.alerting.runtime import AlertRuntime
    from clusternb.config import ClusterNB
    from clusternb.kernel_usage.service import KernelService
    from clusternb.sources.dask import DaskSummary
    from clusternb.sources.probes import ProbeResult
    from clusternb.state.base import StateStore

Built = tuple[Any, Callable[[], pd.DataFrame]]


class QueryBuilders:
    """The builders of every query, by name (:attr:`_builders`), over the client's state, alerts and sources."""

    settings: ClusterNB
    store: StateStore
    alerting: AlertRuntime
    kernel_service: KernelService
    dask_summary: DaskSummary | None
    probe_results: list[ProbeResult]

    def _frame(self, name: str, **params: Any) -> pd.DataFrame:
        raise NotImplementedError  # the client's: a query through the cache

    def alerts(
        self, active: bool = True, since: Any = None, severity: str | None = None, node: str | None = None
    ) -> pd.DataFrame:
        raise NotImplementedError  # the client's

    def shared_state(self) -> frames.SharedState:
        raise NotImplementedError  # the client's

    def _build_workers(self, now: float) -> Built:
        return (), lambda: self._workers(time.time())

    def _build_cluster(self, now: float) -> Built:
        def compute() -> pd.DataFrame:
            at = time.time()
            summary = self.dask_summary
            dask = None
            if summary is not None:
                dask = {"workers": summary.workers, "tasks": summary.tasks, "tasks_per_s": summary.tasks_per_s}
            services = [{"name": r.name, "up": r.up, "latency_ms": r.latency_ms} for r in self.probe_results]
            workers, alerts = self._frame("workers"), self.alerts(active=True)
            # Where the state came from, asked last: the reads above are what may have rejected records.
            beyond = frames.Beyond(dask, services, self.shared_state())
            return frames.status_frame(workers, at, alerts, beyond)

        return (), compute

    def _build_metrics(
        self, now: float, since: Any = "15m", until: Any = None, node: Any = None, fields: Any = None
    ) -> Built:
        checked = check_arguments("metrics", now, {"since": since, "until": until, "node": node, "fields": fields})
        start, end = checked["since"], checked["until"]
        if end is not None and end < start:
            raise arguments.ArgumentError("until", f"{until!r} is before since ({since!r})")
        chosen: tuple[str, ...] = checked["fields"] or frames.METRIC_FIELDS
        nodes = self._check_nodes(checked["node"])
        # The key holds the arguments as given ("15m" stays "15m"): relative windows share one entry per
        # freshness bucket instead of one per microsecond.
        key: tuple[Any, ...] = (_plain(since), _plain(until), nodes, chosen)
        resolution = self._resolution(now, start, end, nodes)
        if resolution != rollup.RAW:  # raw keys stay as they were
            key += (resolution,)

        def compute() -> pd.DataFrame:
            at = time.time()
            lo = arguments.parse_time(since, at, "since")
            hi = None if until is None else arguments.parse_time(until, at, "until")
            if resolution == rollup.RAW:
                frame = frames.metrics_frame(self.store.history(lo, hi, nodes), chosen)
                frame.attrs["resolution"] = rollup.RAW
                return frame
            blocks = self.store.rollups(rollup.TIER_BY_NAME[resolution], lo, hi, nodes)
            return frames.rollup_frame(blocks, chosen, resolution)

        return key, compute

    def _resolution(self, now: float, since: float, until: float | None, nodes: Sequence[str] | None) -> str:
        """Raw samples while the raw window covers ``since``; beyond it the finest rollup tier that covers it
        within :data:`~clusternb.state.rollup.MAX_ROWS` rows (:func:`~clusternb.state.rollup.choose`)."""
        window = self.settings.history_window
        if since >= now - window:
            return rollup.RAW
        count = len(nodes) if nodes is not None else len(self.store.rolled_nodes())
        try:
            return rollup.choose(since, until, now, window, count)
        except ValueError as exc:
            raise arguments.ArgumentError("since", str(exc)) from None

    def _build_alerts(
        self, now: float, active: bool = True, since: Any = None, severity: str | None = None, node: Any = None
    ) -> Built:
        checked = check_arguments("alerts", now, {"active": active, "since": since, "severity": severity, "node": node})
        start = checked["since"]

        def compute() -> pd.DataFrame:
            return alerts_frame(self.alerting.records(), active=active, since=start, severity=severity, node=node)

        return (active, _plain(since), severity, node), compute

    def _build_kernels(self, now: float, **params: Any) -> Built:
        return self.kernel_service.build(now, **params)

    _builders: dict[str, Callable[..., Built]] = {
        "cluster": _build_cluster,
        "workers": _build_workers,
        "metrics": _build_metrics,
        "alerts": _build_alerts,
        "kernels": _build_kernels,
    }

    def _workers(self, now: float) -> pd.DataFrame:
        return frames.workers_frame(self.store.latest(), now, self.settings.thresholds, self.store.departed())

    def _check_nodes(self, node: Sequence[str] | None) -> list[str] | None:
        """Names already checked by their declaration (:mod:`clusternb.params`), here checked against the store."""
        if node is None:
            return None
        wanted = list(node)
        known = {s.node for s in self.store.latest()}
        unknown = [n for n in wanted if n not in known]
        if unknown:  # a node that left the raw window may still have rollups
            known.update(self.store.rolled_nodes())
            unknown = [n for n in wanted if n not in known]
        if unknown:
            shown = sorted(known)[:20]
            more = f" (and {len(known) - 20} more)" if len(known) > 20 else ""
            raise arguments.ArgumentError("node", f"unknown node(s) {unknown[:20]}; known: {shown}{more}")
        return wanted


def _plain(value: Any) -> Any:
    """A JSON-able, process-independent form of a time argument for cache keys."""
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, pd.Timestamp | pd.Timedelta):
        return value.isoformat()
    return repr(value)
