"""A Redis state store that keeps answering when Redis does not: reads fall back to what this process knows.

Writes go to the local memory store always and to Redis when it answers. Reads come from Redis; when it
fails, they come from the last good ``latest()`` read from Redis merged with the local store (this host's
own samples), and :attr:`degraded` says so, so a panel or ``workers()`` call answers with the best data at
hand instead of a traceback. Nodes in that last good view age normally and turn stale, then offline,
which is the truth as far as this process can see. Whether Redis is up is the link's one health state
(:class:`~clusternb.redisio.link.RedisLink`): it logs the outage once, backs off, and the first call that
gets through after the backoff ends it, with no restart.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from clusternb.model import NodeSnapshot
from clusternb.redisio.errors import Unavailable
from clusternb.state.base import Liveness, StateStore
from clusternb.state.memory import MemoryStateStore
from clusternb.state.redis import RedisStateStore
from clusternb.state.rollup import Block, Tier

T = TypeVar("T")


class MirroredStore(StateStore):
    """``primary`` (Redis) for the cluster view, ``local`` (memory) for this host and for outages."""

    def __init__(self, primary: RedisStateStore, local: MemoryStateStore) -> None:
        self.primary = primary
        self.local = local
        self.link = primary.link
        self._last_latest: list[NodeSnapshot] = []

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable (and answers come from this process's last view)."""
        return not self.link.available

    def put(self, snapshot: NodeSnapshot) -> None:
        self.local.put(snapshot)
        with contextlib.suppress(Unavailable):  # counted by the link; this host's sample is in the local store
            self.primary.put(snapshot)

    def leave(self, node: str, when: float) -> None:
        self.local.leave(node, when)
        with contextlib.suppress(Unavailable):
            self.primary.leave(node, when)

    def latest(self) -> list[NodeSnapshot]:
        try:
            snaps = self.primary.latest()
        except Unavailable:
            return self._known_latest()
        self._last_latest = snaps
        return snaps

    def history(
        self, since: float, until: float | None = None, nodes: Collection[str] | None = None
    ) -> list[NodeSnapshot]:
        return self._read(
            lambda: self.primary.history(since, until, nodes), lambda: self.local.history(since, until, nodes)
        )

    def rollups(
        self, tier: Tier, since: float, until: float | None = None, nodes: Collection[str] | None = None
    ) -> list[Block]:
        return self._read(
            lambda: self.primary.rollups(tier, since, until, nodes),
            lambda: self.local.rollups(tier, since, until, nodes),
        )

    def rolled_nodes(self) -> list[str]:
        return self._read(self.primary.rolled_nodes, self.local.rolled_nodes)

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

    @staticmethod
    def _read(primary: Callable[[], T], fallback: Callable[[], T]) -> T:
        try:
            return primary()
        except Unavailable:
            return fallback()

    def _known_latest(self) -> list[NodeSnapshot]:
        merged = {s.node: s for s in self._last_latest}
        merged.update({s.node: s for s in self.local.latest()})
        return list(merged.values())

    def close(self) -> None:
        self.primary.close()
        self.local.close()
