"""The query API: state -> pandas, through the query cache. ``clusternb.workers()`` and friends live here.

A :class:`Client` owns one state store, one sampler (in embedded mode) and one cache. The module-level
functions use a default client created on first use or by :func:`connect`, so a notebook needs no setup.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
from traitlets.config import Config

from clusternb import frames
from clusternb.config import ClusterNB, load_config
from clusternb.sampler import Sampler
from clusternb.sources.local import LocalSampler
from clusternb.state.base import StateStore
from clusternb.state.memory import MemoryStateStore

#: How long the first query of a fresh process waits for the sampler's first sample.
FIRST_SAMPLE_TIMEOUT = 5.0


class Client:
    """One connection to cluster state. Thread-safe; cheap to query, so keep one per process."""

    def __init__(
        self,
        settings: ClusterNB | None = None,
        store: StateStore | None = None,
        sample_local: bool = True,
    ) -> None:
        self.settings = settings or load_config()
        s = self.settings
        self.store = store or MemoryStateStore(window=s.history_window, max_samples=s.history_max_samples)
        self.sampler: Sampler | None = None
        if sample_local:
            local = LocalSampler(
                node=s.node_name,
                disk_path=s.disk_path,
                labels=s.labels,
                interval=s.interval,
                net_exclude=s.net_exclude,
            )
            self.sampler = Sampler(local.sample, [self.store.put], s.interval).start()
            self._local = local
        self._closed = False

    # -- queries ------------------------------------------------------------------------------------------

    def workers(self) -> pd.DataFrame:
        """One row per node, indexed by node name. Columns and dtypes: :data:`clusternb.frames.WORKER_COLUMNS`."""
        self._ready()
        return self._workers(time.time())

    def metrics(
        self,
        since: Any = "15m",
        until: Any = None,
        node: str | Sequence[str] | None = None,
        fields: str | Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Time series, one row per node per sample, oldest first.

        ``since``/``until``: a duration before now ("15m", "2h", 90) or a time (datetime, ISO string).
        ``node``: a node name or a list of them (default: all). ``fields``: metric names
        (default: all of :data:`clusternb.frames.METRIC_FIELDS`).
        """
        now = time.time()
        start = frames.parse_time(since, now, "since")
        end = None if until is None else frames.parse_time(until, now, "until")
        if end is not None and end < start:
            raise ValueError(f"until ({until!r}) is before since ({since!r})")
        chosen = frames.check_fields(fields)
        self._ready()
        nodes = self._check_nodes(node)
        return frames.metrics_frame(self.store.history(start, end, nodes), chosen)

    def cluster_status(self) -> pd.DataFrame:
        """A one-row summary: node counts by status, CPU and memory totals and use, health."""
        self._ready()
        now = time.time()
        return frames.status_frame(self._workers(now), now, self.alerts(active=True))

    def alerts(
        self,
        active: bool = True,
        since: Any = None,
        severity: str | None = None,
        node: str | None = None,
    ) -> pd.DataFrame:
        """Alerts as a frame (:data:`clusternb.frames.ALERT_COLUMNS`); empty until alert rules run."""
        if severity is not None and severity not in frames.SEVERITY_ORDER:
            raise ValueError(f"severity: {severity!r} is not one of {frames.SEVERITY_ORDER}")
        if since is not None:
            frames.parse_time(since, time.time(), "since")
        return frames.empty_alerts_frame()

    # -- lifecycle ----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the sampler and release connections. Queries after close raise ``RuntimeError``."""
        if self._closed:
            return
        self._closed = True
        if self.sampler is not None:
            self.sampler.stop()
            self._local.close()
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------------------

    def _workers(self, now: float) -> pd.DataFrame:
        return frames.workers_frame(self.store.latest(), now, self.settings.thresholds, self.store.departed())

    def _ready(self) -> None:
        if self._closed:
            raise RuntimeError("this clusternb client is closed; call clusternb.connect() for a new one")
        if self.sampler is not None and self.sampler.samples == 0:
            self.sampler.wait_first(FIRST_SAMPLE_TIMEOUT)

    def _check_nodes(self, node: str | Sequence[str] | None) -> list[str] | None:
        if node is None:
            return None
        wanted = [node] if isinstance(node, str) else list(node)
        known = {s.node for s in self.store.latest()}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            shown = sorted(known)[:20]
            more = f" (and {len(known) - 20} more)" if len(known) > 20 else ""
            raise ValueError(f"node: unknown node(s) {unknown}; known: {shown}{more}")
        return wanted


_default: Client | None = None
_default_lock = threading.Lock()


def connect(config: Config | None = None, **settings: Any) -> Client:
    """Create the default client from settings (keyword arguments override config files and env vars).

    ``clusternb.connect(interval=1, disk_path="/data")``. Replaces (and closes) any previous default client.
    """
    global _default
    client = Client(load_config(config, **settings))
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.close()
    return client


def get_client() -> Client:
    """The default client, created with default settings on first use."""
    global _default  # noqa: PLW0603
    with _default_lock:
        if _default is None or _default._closed:
            _default = Client()
        return _default


@atexit.register
def _close_default() -> None:
    if _default is not None:
        _default.close()
