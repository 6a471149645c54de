"""The query API: state -> pandas, through the query cache. ``clusternb.workers()`` and friends live here.

A :class:`Client` owns one state store, one sampler (in embedded mode) and one cache. The module-level
functions use a default client created on first use or by :func:`connect`, so a notebook needs no setup.

Every query is cached under its namespace with a key made of its normalised arguments and a freshness
token: the state store's generation plus the current interval bucket. A new sample therefore means a new
key (the cache never hides it), and derived values such as ``status`` and ``age_s`` are never older than
one sampling interval, whatever the TTL. Arguments are validated before the cache is consulted, so bad
input raises at once and is never cached.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd

from clusternb import arguments
from clusternb.alerting.runtime import AlertRuntime
from clusternb.alerting.store import RedisAlertStore
from clusternb.cache import Cache, build_cache
from clusternb.cache.codec import make_entry
from clusternb.cache.decorators import argument_digest
from clusternb.config import ClusterNB, load_config
from clusternb.frames import SharedState
from clusternb.held import HeldQueries
from clusternb.kernel_usage.measure import KernelInfo
from clusternb.kernel_usage.service import KernelService, board_for
from clusternb.model import NodeSnapshot
from clusternb.query_builders import QueryBuilders
from clusternb.redisio.errors import RedisFault
from clusternb.redisio.link import RedisLink
from clusternb.rejects import Rejections
from clusternb.sampler import Sampler
from clusternb.sources.dask import DaskSource, DaskSummary
from clusternb.sources.local import LocalSampler
from clusternb.sources.probes import ProbeResult, ProbeRunner
from clusternb.state.base import StateStore
from clusternb.state.fallback import MirroredStore
from clusternb.state.memory import MemoryStateStore
from clusternb.state.redis import RedisStateStore

#: Seconds a query's result may stand while the state store's generation has not moved, where longer than the
#: sampling interval. Every result is otherwise recomputed once per interval even on unchanged data, so liveness
#: and ages stay honest; ``metrics`` is the costliest query and depends on the clock only through its window's
#: far edge, where samples leave a 15-minute chart a few seconds late at worst. Any new sample moves the
#: generation, and with it every key, at once.
STANDS_WHILE_UNCHANGED: dict[str, float] = {"metrics": 30.0}
#: Queries whose key carries the state they were computed from (``kernels``: each server report's time), so
#: they take neither the store's generation nor a clock bucket: recomputed when their own state changes, only.
OWN_FRESHNESS: frozenset[str] = frozenset({"kernels"})
#: Seconds between two refreshes of the last view of the shared state kept for outages (see Client.query).
VIEW_REFRESH_S = 10.0
#: How long the first query of a fresh process waits for the sampler's first sample.
FIRST_SAMPLE_TIMEOUT = 5.0
T = TypeVar("T")

#: Each client's serial (:attr:`Client.serial`).
_SERIALS = itertools.count(1)


class NoNodesWarning(UserWarning):
    """``workers()`` is empty because nothing publishes to the configured Redis yet (said once per client)."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """A query's value with the content hash consumers use to tell whether it changed (ETag, WebSocket)."""

    value: Any
    content_hash: str
    created: float
    #: For a caller that holds the result (a panel): what it was computed from (:mod:`clusternb.held`).
    basis: Any = None


class Client(QueryBuilders, HeldQueries):
    """One connection to cluster state. Thread-safe; cheap to query, so keep one per process."""

    def __init__(
        self,
        settings: ClusterNB | None = None,
        store: StateStore | None = None,
        sample_local: bool | None = None,
        dask: Any = None,
    ) -> None:
        """Build from settings. ``sample_local``: run the in-process sampler (default: always in embedded
        mode; with ``redis_url`` only when ``publish_host`` is set, so kernels do not all sample one host)."""
        self.settings = settings or load_config()
        #: A number no other client of this process ever has: a key for what is held per client, where an id()
        #: of a freed client may come back as a new one's.
        self.serial = next(_SERIALS)
        s = self.settings
        local_store = MemoryStateStore(window=s.history_window, max_samples=s.history_max_samples)
        alert_store = None
        #: Records from Redis rejected by any reader of this client (state, history, alerts), per node and reason.
        self.rejections = Rejections()
        #: The one connection to Redis of this client (None in embedded mode): cache, state and alerts share it.
        self.link = RedisLink.from_settings(s) if s.redis_url else None
        if store is None and self.link is not None:
            redis_store = RedisStateStore.from_settings(s, self.link, self.rejections)
            store = MirroredStore(redis_store, local_store)
            alert_store = RedisAlertStore(
                self.link, history=s.alert_history, state=redis_store, rejections=self.rejections
            )
        self.store: StateStore = store or local_store
        self.cache: Cache = build_cache(s, self.link)
        self.alerting = AlertRuntime(s, store=alert_store)
        #: This server's kernels (published once a server watches them) and the kernels() query.
        self.kernel_service = KernelService(s, board_for(s, self.link, self.rejections), self.store, self.rejections)
        self.kernel_service.on_shares = self.alerting.on_kernels
        if sample_local is None:
            sample_local = not s.redis_url or s.publish_host
        self.sampler: Sampler | None = None
        if sample_local:
            local = LocalSampler.from_settings(s)
            sinks: list[Callable[[NodeSnapshot], None]] = [
                self.store.put, self.after_sample, self.kernel_service.after_sample,
            ]  # fmt: skip
            self.sampler = Sampler(local.sample, sinks, s.interval).start()
            self._local = local
        # Other sources (a Dask scheduler, service probes) are polled by one more thread, never in a query.
        dask = dask if dask is not None else (s.dask_scheduler or None)
        self.dask = DaskSource(dask) if dask is not None else None
        self.probes = ProbeRunner(s.services, s.probe_timeout) if s.services else None
        self.dask_summary: DaskSummary | None = None
        self.probe_results: list[ProbeResult] = []
        self.source_poller: Sampler | None = None
        if self.dask is not None or self.probes is not None:
            self.source_poller = Sampler(self._poll_sources, [], s.interval, first_delay=0, name="clusternb-sources")
            self.source_poller.start()
        self._closed = False
        self._hinted = False
        self._view_at = 0.0
        self._view_every = max(VIEW_REFRESH_S, s.interval)

    def _poll_sources(self) -> None:
        now = time.time()
        if self.dask is not None:
            snaps, self.dask_summary = self.dask.read(self.settings.interval)
            for snap in snaps:
                self.store.put(snap)
                self.alerting.on_sample(snap)
        if self.probes is not None:
            self.probe_results = self.probes.run()
            for result in self.probe_results:
                self.alerting.evaluate_service(result.name, result.up, now)

    def after_sample(self, snapshot: NodeSnapshot) -> None:
        """Sampler sink: evaluate alert rules where the sample was made, then the liveness watchdog."""
        self.alerting.on_sample(snapshot)
        self.alerting.check_liveness(self.store, self.settings.thresholds, time.time(), self.settings.interval)

    # -- queries ------------------------------------------------------------------------------------------

    def workers(self) -> pd.DataFrame:
        """One row per node, indexed by node name. Columns and dtypes: :data:`clusternb.frames.WORKER_COLUMNS`.

        An empty frame from a Redis nobody publishes to is told once, with a :class:`NoNodesWarning`.
        """
        frame = self._frame("workers")
        if frame.empty and not self._hinted:
            hint = self.empty_hint()
            if hint is not None:
                self._hinted = True
                warnings.warn(hint, NoNodesWarning, stacklevel=2)
        return frame

    def empty_hint(self) -> str | None:
        """Why there may be no nodes at all: no agent has published to the configured Redis (None otherwise)."""
        if self.link is None or not self.link.available or self.sampler is not None:
            return None
        return (
            f"no node has published to {self.link.safe_url} yet: start `clusternb agent --redis URL` on each "
            "node (or `clusternb demo` to try it on this host)"
        )

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
        return self._frame("metrics", since=since, until=until, node=node, fields=fields)

    def cluster_status(self) -> pd.DataFrame:
        """A one-row summary: node counts by status, CPU and memory totals and use, health."""
        return self._frame("cluster")

    def alerts(
        self,
        active: bool = True,
        since: Any = None,
        severity: str | None = None,
        node: str | None = None,
    ) -> pd.DataFrame:
        """Alerts as a frame (:data:`clusternb.frames.ALERT_COLUMNS`), newest first.

        ``active``: only pending and firing alerts (default) or resolved ones too. ``since``: alerts active at
        some point since then. ``severity``: info / warning / critical. ``node``: alerts about one node.
        """
        return self._frame("alerts", active=active, since=since, severity=severity, node=node)

    def kernels(
        self, node: str | Sequence[str] | None = None, path: str | None = None, min_memory: Any = None, me: bool = False
    ) -> pd.DataFrame:
        """Jupyter kernels of every server with the clusternb extension, one row per kernel, largest memory first.

        Memory counts the kernel's process and its children. ``node``: a node name or a list of them. ``path``: a
        pattern of notebook paths ('*' any text). ``min_memory``: bytes, or a size such as '300MB'. ``me``: only
        kernels of the Unix user running this. Other users' kernels show no path unless an administrator
        allows it (``ClusterNB.kernel_paths_of_others``). Columns: :data:`clusternb.columns.KERNEL_COLUMNS`.
        """
        return self._frame("kernels", node=node, path=path, min_memory=min_memory, me=me)

    def acknowledge(self, alert_id: str, by: str | None = None) -> None:
        """Acknowledge an active alert (``alerts().alert_id``); it stays acknowledged until it resolves."""
        (alert_id,) = arguments.names("alert_id", [alert_id])
        if by is not None:
            (by,) = arguments.names("by", [by])
        self.alerting.acknowledge(alert_id, by=by)
        self.cache.invalidate("alerts")  # the store generation does not move on an acknowledgement
        self.cache.invalidate("cluster")

    def shared_state(self) -> SharedState:
        """Where this client's answers come from: Redis, or (during an outage) this process's last view."""
        link = self.link
        rejected, why = self.rejections.total, self.rejections.summary()
        if link is None:
            return SharedState(None, None, None, rejected, why)
        h = link.health
        return SharedState(link.state_text, h.since, None if link.available else h.last_error, rejected, why)

    def cache_status(self) -> pd.DataFrame:
        """The cache's state: active backend, Redis health, per-namespace hits, misses, sizes and timings."""
        return self.cache.status_frame()

    def _frame(self, name: str, **params: Any) -> pd.DataFrame:
        value = self.query(name, **params).value
        assert isinstance(value, pd.DataFrame)
        return value

    def query(self, name: str, held: QueryResult | None = None, holding: bool = False, **params: Any) -> QueryResult:
        """Run a query by name (cluster, workers, metrics, alerts) through the cache, with its content hash.

        ``held``: a result the caller already holds (a panel's last one). While the cache holds that very
        entry it comes back as it is, uncopied and counted as a hit: the arguments are checked and the key is
        made once, whatever the answer. ``holding``: the caller keeps results and passes them back as
        ``held`` (a panel): a result then comes with what it was computed from, and a held one stands while
        that is unchanged, or is extended by the new samples (:mod:`clusternb.held`; ages may then lag).
        """
        builder = self._builder(name)
        self._ready()
        now = time.time()
        key_params, compute = builder(self, now, **params)
        if (holding or held is not None) and self.settings.cache_enabled:
            result = self._held(name, params, (key_params, compute), held, now)
        else:
            result = self._cached(name, key_params, compute, held)
        self._keep_last_view(now)
        return result

    def _keep_last_view(self, now: float) -> None:
        """Keep this process's last view of the shared state fresh enough to answer from during an outage.

        That view is what the stores last read from Redis; an answer served from the shared cache reads no
        store, so a process that only ever got cache hits (a server behind kernels that compute) would have
        nothing to show when Redis goes. Every ``VIEW_REFRESH_S`` (or interval, if longer) it reads it anew:
        one HVALS and one alert read, whatever the number of queries.
        """
        if self.link is None or not self.link.available or now - self._view_at < self._view_every:
            return
        self._view_at = now
        with contextlib.suppress(RedisFault):
            self.store.latest()
            self.alerting.records()

    def peek(self, name: str, **params: Any) -> QueryResult | None:
        """The cached result's hash and time, without building or copying the value; None on a miss.

        For consumers that already hold an encoding of the value per content hash (the REST handlers): with
        the memory cache this costs a dict lookup, cheap enough to run on an event loop. ``value`` is None.
        """
        builder = self._builder(name)
        if not self.settings.cache_enabled:
            return None
        key_params, _ = builder(self, time.time(), **params)
        entry = self.cache.peek(self._key(name, key_params))  # a change check, not a use: no hit/miss
        return None if entry is None else QueryResult(None, entry.content_hash, entry.created)

    def _builder(self, name: str) -> Callable[..., tuple[Any, Callable[[], pd.DataFrame]]]:
        builder = self._builders.get(name)
        if builder is None:
            raise arguments.ArgumentError("query", f"unknown query {name!r}; known: {sorted(self._builders)}")
        return builder

    def _cached(
        self, namespace: str, key_params: Any, compute: Callable[[], T], held: QueryResult | None = None
    ) -> QueryResult:
        if not self.settings.cache_enabled:
            value = compute()
            fresh = make_entry(value, time.time())
            return QueryResult(value, fresh.content_hash, fresh.created)
        key = self._key(namespace, key_params)
        if held is not None:
            start = time.perf_counter_ns()
            same = self.cache.peek(key)
            if same is not None and (same.content_hash, same.created) == (held.content_hash, held.created):
                self.cache.served(namespace, time.perf_counter_ns() - start)
                return held
        value, entry = self.cache.get_or_compute(namespace, key, compute)
        self.cache.supersede(namespace, key.rpartition(":")[0], key)  # the lineage: the key without its freshness
        if entry is None:  # uncacheable (counted as a cache error); still give consumers a hash
            return QueryResult(value, argument_digest((repr(value),), {}), time.time())
        return QueryResult(value, entry.content_hash, entry.created)

    def _key(self, namespace: str, key_params: Any) -> str:
        fresh = self._freshness(namespace)
        return f"{self.cache.namespace_prefix(namespace)}q:{argument_digest(key_params, {})}:{fresh}"

    def peeks_in_process(self, name: str) -> bool:
        """Whether :meth:`peek` of query ``name`` touches only this process's memory, so a server may call it on
        its event loop: the cache and the store for every query, and the kernel board for a query of
        :data:`OWN_FRESHNESS`, whose key is made from its reports."""
        local = self.cache.backend.in_process and self.store.in_process
        return local and (name not in OWN_FRESHNESS or self.kernel_service.board.in_process)

    def _freshness(self, namespace: str) -> str:
        """Changes with every write to the store and at every boundary of the query's freshness bucket: the
        sampling interval, or :data:`STANDS_WHILE_UNCHANGED` for a query whose result depends on the clock only
        a little (see the module docstring). The one freshness policy of every face."""
        if namespace in OWN_FRESHNESS:
            return "own"
        bucket = max(self.settings.interval, STANDS_WHILE_UNCHANGED.get(namespace, 0.0))
        return f"{self.store.generation()}.{int(time.time() // bucket)}"

    # -- lifecycle ----------------------------------------------------------------------------------------

    def watch_kernels(self, directory: Callable[[], tuple[KernelInfo, ...]], server: str) -> None:
        """Measure and publish the kernels ``directory()`` lists (a Jupyter server's) as the server at ``server``,
        after each host sample in the host's sampler thread (or, where no host is sampled here, in one thread of
        their own): see :class:`~clusternb.kernel_usage.service.KernelService`."""
        gpu = self._local.gpu_processes if self.sampler is not None else None
        self.kernel_service.watch(directory, server, gpu, own_thread=self.sampler is None)

    def close(self) -> None:
        """Stop the sampler and release connections. Queries after close raise ``RuntimeError``."""
        if self._closed:
            return
        self._closed = True
        if self.sampler is not None:
            self.sampler.stop()
            self._local.close()
        if self.source_poller is not None:
            self.source_poller.stop()
        if self.dask is not None:
            self.dask.close()
        if self.probes is not None:
            self.probes.close()
        self.kernel_service.close()
        self.store.close()
        self.cache.close()
        if self.link is not None:
            self.link.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------------------

    def _ready(self) -> None:
        if self._closed:
            raise RuntimeError("this clusternb client is closed; call clusternb.connect() for a new one")
        for poller in (self.sampler, self.source_poller):
            if poller is not None and poller.samples == 0:
                poller.wait_first(FIRST_SAMPLE_TIMEOUT)
