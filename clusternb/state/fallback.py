"""A Redis state store that keeps answering when Redis does not: reads fall back to what this process knows.

Writes go to the local memory store always and to Redis when it answers. Reads come from Redis; when it
fails, they come from the last good ``latest()`` read from Redis merged with the local store (this host's
own samples), and :attr:`degraded` says so, so a panel or ``workers()`` call answers with the best data at
hand instead of a traceback. Nodes in that last good view age normally and turn stale, then offline,
which is the truth as far as this process can see. The outage is logged once; the next successful read
ends it, with no restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

import redis

from clusternb.model import NodeSnapshot
from clusternb.state.base import Liveness, StateStore
from clusternb.state.memory import MemoryStateStore

log = logging.getLogger(__name__)
_FAILURES = (redis.RedisError, OSError)
T = TypeVar("T")


class MirroredStore(StateStore):
    """``primary`` (Redis) for the cluster view, ``local`` (memory) for this host and for outages."""

    def __init__(self, primary: StateStore, local: MemoryStateStore) -> None:
        self.primary = primary
        self.local = local
        self.degraded = False
        self.last_error: str | None = None
        self.failures = 0
        self._last_latest: list[NodeSnapshot] = []
        self._lock = threading.Lock()

    def put(self, snapshot: NodeSnapshot) -> None:
        self.local.put(snapshot)
        try:
            self.primary.put(snapshot)
        except _FAILURES as exc:
            self._failed(exc)

    def leave(self, node: str, when: float) -> None:
        self.local.leave(node, when)
        try:
            self.primary.leave(node, when)
        except _FAILURES as exc:
            self._failed(exc)

    def latest(self) -> list[NodeSnapshot]:
        snaps = self._read(self.primary.latest, self._known_latest)
        if not self.degraded:
            self._last_latest = snaps
        return snaps

    def history(
        self, since: float, until: float | None = None, nodes: Collection[str] | None = None
    ) -> list[NodeSnapshot]:
        return self._read(
            lambda: self.primary.history(since, until, nodes), lambda: self.local.history(since, until, nodes)
        )

    def departed(self) -> Mapping[str, float]:
        return self._read(self.primary.departed, self.local.departed)

    def liveness(self) -> Liveness:
        return self._read(self.primary.liveness, lambda: Liveness.of(self._known_latest(), self.local.departed()))

    def generation(self) -> int:
        # During an outage local writes and the clock still move on: a new value each second keeps cached
        # answers honest.
        return self._read(
            self.primary.generation,
            lambda: -(self.local.generation() * 100_000 + int(time.time()) % 100_000) - 1,
        )

    def _read(self, primary: Callable[[], T], fallback: Callable[[], T]) -> T:
        """Read from Redis; on failure note the outage (logged once) and answer from what this process knows."""
        try:
            value = primary()
        except _FAILURES as exc:
            self._failed(exc)
            return fallback()
        self._ok()
        return value

    def _known_latest(self) -> list[NodeSnapshot]:
        merged = {s.node: s for s in self._last_latest}
        merged.update({s.node: s for s in self.local.latest()})
        return list(merged.values())

    def close(self) -> None:
        self.primary.close()
        self.local.close()

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if not self.degraded:
                self.degraded = True
                log.warning("clusternb: redis state unreachable (%s); showing what this process knows", exc)

    def _ok(self) -> None:
        if self.degraded:
            with self._lock:
                if self.degraded:
                    self.degraded = False
                    log.warning("clusternb: redis state reachable again")
