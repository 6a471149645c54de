"""The query cache: namespacing, TTLs, encoding, statistics and single-flight, once, over any backend.

Keys look like ``clusternb:cache:v1:0.1.0:workers:<function>:<argument digest>[:<freshness token>]``, so
they never collide between namespaces, functions, arguments, entry formats or clusternb versions, and one
namespace can be cleared with a prefix scan.

Single-flight: concurrent misses of one key compute once per process (a Future per key for threads, one
per key and event loop for tasks). With Redis as the active backend, the computing process also takes a
short lease (``SET NX PX``); other processes poll for the result during the lease instead of recomputing.
Whatever happens in the cache, the caller gets the function's result: cache failures are counted, logged
once per kind and never raised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import pandas as pd

from clusternb import arguments
from clusternb._version import __version__
from clusternb.cache.base import Backend, BackendUnavailable, Leases
from clusternb.cache.codec import FORMAT_VERSION, DecodeError, EncodeError, Entry, make_entry
from clusternb.cache.stats import NamespaceStats

log = logging.getLogger(__name__)
T = TypeVar("T")

#: What :meth:`Cache.use` returns for no entry, or one whose payload does not decode.
UNUSABLE: Any = object()
#: How long, at most, a process waits for another process's lease before computing the value itself.
LEASE_SECONDS = 5.0
_LEASE_POLL = 0.02
#: Lineages (a query and its arguments) whose newest key a cache remembers, to delete the key it supersedes.
LINEAGES = 1024


def key_prefix(prefix: str = "clusternb") -> str:
    """What every key of a cache starts with: one prefix per entry format and clusternb version."""
    return f"{prefix}:cache:v{FORMAT_VERSION}:{__version__}:"


class Cache:
    """A cache over one backend (memory, Redis, or Redis with memory fallback)."""

    def __init__(
        self,
        backend: Backend,
        ttls: Mapping[str, float] | None = None,
        default_ttl: float = 15.0,
        prefix: str = "clusternb",
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.backend = backend
        self.ttls = dict(ttls or {})
        self.default_ttl = default_ttl
        self.key_prefix = key_prefix(prefix)
        self.lease_seconds = lease_seconds
        self.stats: dict[str, NamespaceStats] = {}
        # Errors of no one namespace (clear()): counted in the "(all)" row, never as a namespace of that name.
        self._unattributed = NamespaceStats()
        self.started = time.time()
        self._inflight: dict[str, concurrent.futures.Future[tuple[Entry | None, Any]]] = {}
        self._ainflight: dict[tuple[int, str], asyncio.Future[tuple[Entry | None, Any]]] = {}
        self._lock = threading.Lock()
        self._logged: set[str] = set()
        self._lineages: OrderedDict[str, str] = OrderedDict()  # lineage -> the newest key this process used

    # -- keys and TTLs ----------------------------------------------------------------------------------------

    def namespace_prefix(self, namespace: str) -> str:
        arguments.namespace("namespace", namespace)
        return f"{self.key_prefix}{namespace}:"

    def ttl(self, namespace: str) -> float:
        return self.ttls.get(namespace, self.default_ttl)

    def stats_for(self, namespace: str) -> NamespaceStats:
        stats = self.stats.get(namespace)
        if stats is None:
            stats = self.stats.setdefault(namespace, NamespaceStats())
        return stats

    # -- the two halves of a cached call ------------------------------------------------------------------------

    def lookup(self, stats: NamespaceStats, key: str) -> Entry | None:
        """Get an entry, recording hit/miss/error and the time taken. Never raises."""
        start = time.perf_counter_ns()
        try:
            entry = self.backend.get(key)
        except (DecodeError, BackendUnavailable) as exc:
            self._error(stats, "get", exc)
            entry = None
        return stats.record(entry, time.perf_counter_ns() - start)

    def compute(
        self, stats: NamespaceStats, key: str, ttl: float, fn: Callable[[], T], share: bool = False
    ) -> tuple[T, Entry | None]:
        """Run ``fn`` once per key across this process's threads (and, with Redis, across processes)."""
        with self._lock:
            future = self._inflight.get(key)
            leader = future is None
            if future is None:
                future = self._inflight[key] = concurrent.futures.Future()
        if not leader:
            entry, value = future.result()
            found = self.use(stats, entry, share)
            return (value if found is UNUSABLE else found), entry
        try:
            entry = self.peek(key)  # another thread may have stored it just before we became leader
            found = self.use(stats, entry, share)
            if found is not UNUSABLE:
                future.set_result((entry, None))
                return found, entry
            value, entry = self._load(stats, key, ttl, fn, share)
            future.set_result((entry, value))
            return value, entry
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    async def acompute(
        self, stats: NamespaceStats, key: str, ttl: float, fn: Callable[[], Awaitable[T]], share: bool = False
    ) -> tuple[T, Entry | None]:
        """The asyncio twin of :meth:`compute`: one run per key and event loop."""
        loop = asyncio.get_running_loop()
        slot = (id(loop), key)
        future = self._ainflight.get(slot)
        if future is not None:
            entry, value = await asyncio.shield(future)
            found = self.use(stats, entry, share)
            return (value if found is UNUSABLE else found), entry
        future = self._ainflight[slot] = loop.create_future()
        try:
            entry = await self._apeek(key)
            found = self.use(stats, entry, share)
            if found is not UNUSABLE:
                future.set_result((entry, None))
                return found, entry
            value = await fn()
            stats.loads += 1
            entry = self._encode(stats, value)
            if entry is not None:
                try:
                    await self.backend.aset(key, entry, ttl)
                except Exception as exc:
                    self._error(stats, "set", exc)
            future.set_result((entry, value))
            return value, entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: followers re-raise it, nobody else must log it
            raise
        finally:
            self._ainflight.pop(slot, None)

    async def alookup(self, stats: NamespaceStats, key: str) -> Entry | None:
        start = time.perf_counter_ns()
        try:
            entry = await self.backend.aget(key)
        except (DecodeError, BackendUnavailable) as exc:
            self._error(stats, "get", exc)
            entry = None
        return stats.record(entry, time.perf_counter_ns() - start)

    def peek(self, key: str) -> Entry | None:
        """The entry under ``key`` if there is one, without counting a hit or a miss (for change checks).

        A consumer that then answers from that entry (through its own encoding of the value) must count the
        read with :meth:`served`: a statistic counts every read, whichever face made it.
        """
        try:
            return self.backend.get(key)
        except (DecodeError, BackendUnavailable):
            return None

    def served(self, namespace: str, elapsed_ns: int) -> None:
        """Count a hit for a read answered without :meth:`lookup`: from a peeked entry (the server's fast path)
        or by joining another request's computation of the same entry (``DataService.get``)."""
        self.stats_for(namespace).record(True, elapsed_ns)

    # -- direct use -------------------------------------------------------------------------------------------

    def get_or_compute(
        self, namespace: str, key: str, fn: Callable[[], T], ttl: float | None = None, share: bool = False
    ) -> tuple[T, Entry | None]:
        """``(value, entry)`` for a full key under ``namespace``; ``entry`` is None if the value is uncacheable.

        Each caller gets its own value to mutate as it likes. ``share=True`` skips that copy: callers of an
        in-process entry then get one shared object, which none of them may mutate (see ``@cached``).
        """
        stats = self.stats_for(namespace)
        entry = self.lookup(stats, key)
        found = self.use(stats, entry, share)
        if found is not UNUSABLE:
            return found, entry
        return self.compute(stats, key, self.ttl(namespace) if ttl is None else ttl, fn, share)

    def use(self, stats: NamespaceStats, entry: Entry | None, share: bool = False) -> Any:
        """The caller's copy of an entry's value (with ``share``, the entry's own value); :data:`UNUSABLE` for no
        entry, and for one whose payload does not decode (counted as an error): a forged or corrupted entry whose
        header and hash were fine is a miss, recomputed and overwritten."""
        if entry is None:
            return UNUSABLE
        try:
            return entry.value_for_caller(share)
        except DecodeError as exc:
            self.count_error(stats, "decode", exc)
            return UNUSABLE

    def supersede(self, namespace: str, lineage: str, key: str) -> None:
        """``key`` is now the entry of ``lineage`` (a query and its arguments, whose key also carries the state's
        generation): the key of that lineage this process used before can never be asked for again, so it is
        deleted now instead of living out its TTL. Without this, every new sample left one dead entry per
        query in Redis for its whole TTL, and Redis' memory rose and fell with the request rate (the soak of
        issue 17). Other processes delete what they superseded themselves; a miss on a deleted key only
        recomputes. At most :data:`LINEAGES` lineages are remembered (least recently used go first).

        Called on every cached call of a lineage, hits included: when the key is the one remembered (all calls
        but the first after a change) it costs one dict read, without the lock."""
        if self._lineages.get(lineage) == key:  # dict reads are atomic under the GIL
            return
        with self._lock:
            previous = self._lineages.pop(lineage, None)
            self._lineages[lineage] = key
            while len(self._lineages) > LINEAGES:
                self._lineages.popitem(last=False)
        if previous is None or previous == key:
            return
        try:
            self.backend.delete(previous)
        except Exception as exc:  # Redis down: the entry expires on its own
            self._error(self.stats_for(namespace), "supersede", exc)

    def invalidate(self, namespace: str) -> int:
        """Drop every entry of one namespace (in Redis: for every process). Returns how many were dropped."""
        prefix = self.namespace_prefix(namespace)  # a bad name is the caller's error: raise it
        try:
            return self.backend.clear(prefix)
        except Exception as exc:
            self._error(self.stats_for(namespace), "invalidate", exc)
            return 0

    def clear(self) -> int:
        """Drop every entry of this clusternb version."""
        try:
            return self.backend.clear(self.key_prefix)
        except Exception as exc:
            self._error(self._unattributed, "clear", exc)
            return 0

    async def aclose(self) -> None:
        """Close the running event loop's connections (before the loop ends)."""
        await self.backend.aclose()

    def close(self) -> None:
        self.backend.close()

    # -- status -----------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Plain-JSON status: active backend, Redis health, per-namespace statistics."""
        backend = self.backend
        active = backend.active.name
        health = backend.health()
        redis_url = health.get("redis_url")
        namespaces = {}
        # Every configured namespace is listed, used by this process or not: its entries may have been written
        # by another process (Redis), and "0 entries" beside entries that exist would be false.
        for name in sorted(set(self.stats) | set(self.ttls)):
            stats = self.stats.get(name) or NamespaceStats()
            try:
                entries, size = backend.usage(self.namespace_prefix(name))
            except Exception:
                entries, size = 0, 0
            mean_us, p99_us = stats.get_times_us()
            namespaces[name] = {
                "hits": stats.hits,
                "misses": stats.misses,
                "hit_rate": round(stats.hit_rate, 4),
                "loads": stats.loads,
                "errors": stats.errors,
                "entries": entries,
                "bytes": size,
                "mean_get_us": round(mean_us, 2),
                "p99_get_us": round(p99_us, 2),
                "ttl_s": self.ttl(name),
            }
        return {
            "backend": active,
            "configured": "redis" if redis_url else backend.name,
            "redis_url": redis_url,
            "redis_state": health.get("redis_state"),
            "near_cache": health.get("near_cache"),
            "last_failure": health.get("last_failure"),
            "last_failure_reason": health.get("last_failure_reason"),
            "last_recovery": health.get("last_recovery"),
            "down_since": health.get("down_since"),
            "fallbacks": health.get("fallbacks", 0),
            "unattributed_errors": self._unattributed.errors,
            "uptime_s": round(time.time() - self.started, 3),
            "namespaces": namespaces,
        }

    def status_frame(self) -> pd.DataFrame:
        """``cache_status()``: one row per namespace (plus ``(all)``), the connection state on every row."""
        from clusternb.frames import cache_status_frame

        return cache_status_frame(self.status())

    # -- internals --------------------------------------------------------------------------------------------

    async def _apeek(self, key: str) -> Entry | None:
        """The asyncio twin of :meth:`peek`."""
        try:
            return await self.backend.aget(key)
        except (DecodeError, BackendUnavailable):
            return None

    def _load(
        self, stats: NamespaceStats, key: str, ttl: float, fn: Callable[[], T], share: bool = False
    ) -> tuple[T, Entry | None]:
        leases = self.backend.leases
        token = None
        if leases is not None:
            try:
                token = leases.acquire_lease(key, self.lease_seconds)
                if token is None:  # another process is computing it: wait for its result a little while
                    entry = self._wait_for_other_process(leases, key)
                    found = self.use(stats, entry, share)
                    if found is not UNUSABLE:
                        return found, entry
            except Exception as exc:  # unreachable, or refusing writes (OOM): compute without a lease
                self._error(stats, "lease", exc)
                token = None
        try:
            value = fn()
            stats.loads += 1
            entry = self._encode(stats, value)
            if entry is not None:
                try:
                    self.backend.set(key, entry, ttl)
                except Exception as exc:  # a full Redis refusing the write: the caller still gets the value
                    self._error(stats, "set", exc)
            return value, entry
        finally:
            if token is not None and leases is not None:
                try:
                    leases.release_lease(key, token)
                except Exception as exc:  # the lease expires on its own
                    self._error(stats, "lease", exc)

    def _wait_for_other_process(self, leases: Leases, key: str) -> Entry | None:
        deadline = time.monotonic() + self.lease_seconds
        while time.monotonic() < deadline:
            time.sleep(_LEASE_POLL)
            try:
                entry = leases.get(key)
            except DecodeError:
                return None
            if entry is not None:
                return entry
        return None

    def _encode(self, stats: NamespaceStats, value: Any) -> Entry | None:
        try:
            return make_entry(value, time.time())
        except EncodeError as exc:
            self._error(stats, "encode", exc)
            return None

    def count_error(self, stats: NamespaceStats, op: str, exc: BaseException) -> None:
        """Count (and log once per kind) a cache failure that the caller does not see. An entry that was found
        but does not decode (``op == "decode"``) was counted as a hit by the lookup: it is a miss."""
        if op == "decode":
            stats.hits -= 1
            stats.misses += 1
        self._error(stats, op, exc)

    def _error(self, stats: NamespaceStats, op: str, exc: BaseException) -> None:
        stats.errors += 1
        kind = f"{op}:{type(exc).__name__}"
        if kind not in self._logged:  # once per kind of failure, not once per call
            self._logged.add(kind)
            log.warning("clusternb cache %s failed (counted in cache_status, not logged again): %s", op, exc)
