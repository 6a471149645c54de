"""In-process state store for embedded mode: a dict of latest snapshots and one bounded deque per node.

Memory stays flat however long it runs: history is trimmed by time on every write and each deque also has
a hard ``maxlen``, so a clock jumping backwards cannot make it grow without bound either.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection, Mapping

from clusternb.model import NodeSnapshot
from clusternb.state.base import StateStore


class MemoryStateStore(StateStore):
    """Thread-safe: the sampler thread writes while kernels, handlers and panels read."""

    in_process = True

    def __init__(self, window: float = 3600.0, max_samples: int = 20_000) -> None:
        self.window = window
        self.max_samples = max_samples
        self._latest: dict[str, NodeSnapshot] = {}
        self._history: dict[str, deque[NodeSnapshot]] = {}
        self._departed: dict[str, float] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def put(self, snapshot: NodeSnapshot) -> None:
        with self._lock:
            node = snapshot.node
            self._latest[node] = snapshot
            self._departed.pop(node, None)
            hist = self._history.get(node)
            if hist is None:
                hist = self._history[node] = deque(maxlen=self.max_samples)
            hist.append(snapshot)
            horizon = snapshot.time - self.window
            while hist and hist[0].time < horizon:
                hist.popleft()
            self._generation += 1

    def latest(self) -> list[NodeSnapshot]:
        with self._lock:
            return list(self._latest.values())

    def history(
        self, since: float, until: float | None = None, nodes: Collection[str] | None = None
    ) -> list[NodeSnapshot]:
        with self._lock:
            wanted = self._history.keys() if nodes is None else [n for n in nodes if n in self._history]
            series = [list(self._history[n]) for n in wanted]
        out: list[NodeSnapshot] = []
        for samples in series:
            out.extend(s for s in samples if s.time >= since and (until is None or s.time <= until))
        return out

    def leave(self, node: str, when: float) -> None:
        with self._lock:
            self._departed[node] = when
            self._generation += 1

    def departed(self) -> Mapping[str, float]:
        with self._lock:
            return dict(self._departed)

    def generation(self) -> int:
        return self._generation

    def sample_count(self) -> int:
        """Samples held across all nodes (for tests and ``cache_status``-style diagnostics)."""
        with self._lock:
            return sum(len(h) for h in self._history.values())
