"""The state store interface every reader depends on: latest snapshot per node, bounded history, rollups beyond
it (:mod:`clusternb.state.rollup`), a generation.

The ``generation`` is a counter bumped by every write. The query cache puts it in its keys, so a cached result
is never older than the newest sample the store holds, while unchanged state is still served from the cache.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

from clusternb.model import NodeSnapshot
from clusternb.state.rollup import Block, Tier


class Liveness(NamedTuple):
    """What a liveness check needs and no more: when each node last sampled, at what interval, and who left."""

    seen: Mapping[str, tuple[float, float]]  #: node -> (time of its newest sample, its interval in seconds)
    departed: Mapping[str, float]  #: node -> time it left cleanly

    @classmethod
    def of(cls, latest: Iterable[NodeSnapshot], departed: Mapping[str, float]) -> Liveness:
        """The view derived from full snapshots, for stores that hold nothing cheaper."""
        return cls({s.node: (s.time, s.interval_s) for s in latest}, departed)


class StateStore(ABC):
    """Latest snapshot per node, per-node history bounded by a time window, and departures."""

    #: Whether the state lives in this process's memory, so a read never blocks on I/O (the REST handlers may
    #: then read on the event loop); False for any store that may reach Redis, a mirrored one included.
    in_process: bool = False

    @abstractmethod
    def put(self, snapshot: NodeSnapshot) -> None:
        """Record a sample: it becomes the node's latest and joins its history."""

    @abstractmethod
    def latest(self) -> list[NodeSnapshot]:
        """The newest snapshot of every known node (departed nodes included, see :meth:`departed`)."""

    @abstractmethod
    def history(
        self, since: float, until: float | None = None, nodes: Collection[str] | None = None
    ) -> list[NodeSnapshot]:
        """Samples with ``since <= time <= until`` (epoch seconds), optionally of some nodes only."""

    @abstractmethod
    def leave(self, node: str, when: float) -> None:
        """Record that a node left cleanly (its agent stopped on purpose) at ``when``."""

    @abstractmethod
    def departed(self) -> Mapping[str, float]:
        """Nodes that left cleanly and have not published since, with the time they left."""

    def rollups(
        self, tier: Tier, since: float, until: float | None = None, nodes: Collection[str] | None = None
    ) -> list[Block]:
        """Rolled-up rows of ``tier`` starting within ``[since, until]``; a store that keeps none has none."""
        return []

    def rolled_nodes(self) -> list[str]:
        """Nodes with rollups kept (they may have left the raw window long ago)."""
        return []

    def liveness(self) -> Liveness:
        """Each node's newest sample time and interval plus the departures; stores override it to read less."""
        return Liveness.of(self.latest(), self.departed())

    @abstractmethod
    def generation(self) -> int:
        """A number that changes whenever the stored state changes."""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to release
        """Release connections; the default store holds none."""
