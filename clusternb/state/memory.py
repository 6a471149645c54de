"""In-process state store for embedded mode: a dict of latest snapshots and one bounded deque per node.

Memory stays flat however long it runs: history is trimmed by time on every write and each deque also has
a hard ``maxlen``, so a clock jumping backwards cannot make it grow without bound either. Rollups are kept as
the same compact records Redis holds (about 75 KB per node per day of minute rows), each tier trimmed to its
retention and to a hard count of blocks.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Collection, Mapping, Sequence

from clusternb.model import NodeSnapshot
from clusternb.rejects import Rejections
from clusternb.state.base import StateStore
from clusternb.state.rolling import Rolling
from clusternb.state.rollup import TIER_BY_NAME, Block, Roller, Tier


class MemoryStateStore(Rolling, StateStore):
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
        self._rolls: dict[tuple[str, str], dict[float, bytes]] = {}  # (node, tier) -> block start -> record
        self._rolled_at: dict[tuple[str, str], float] = {}  # (node, tier) -> when this host last wrote it
        self._rolls_swept = 0.0
        self.rejections = Rejections()
        self.roller = Roller(self._load_block)

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
        self._roll(snapshot)

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
        self._flush_rollups(node)
        with self._lock:
            self._departed[node] = when
            self._generation += 1

    def departed(self) -> Mapping[str, float]:
        with self._lock:
            return dict(self._departed)

    def generation(self) -> int:
        return self._generation

    def _keep_blocks(self, records: Sequence[tuple[Block, bytes]]) -> None:
        now = time.time()
        with self._lock:
            for block, record in records:
                tier = block.tier
                kept = self._rolls.setdefault((block.node, tier.name), {})
                kept[block.start] = record
                self._rolled_at[(block.node, tier.name)] = now
                # As in Redis (PUT_BLOCK): the retention before the newest block or this host's clock, the
                # earlier, and blocks later than the clock plus the skew; then the oldest past the hard count.
                late = now + self.max_clock_skew
                cutoff = min(max((s for s in kept if s <= late), default=now), now) - tier.retention
                for start in [s for s in kept if s < cutoff or s > late]:
                    del kept[start]
                cap = int(tier.retention // tier.block) + 2
                for start in sorted(kept)[: max(len(kept) - cap, 0)]:
                    del kept[start]
                if not kept:
                    del self._rolls[(block.node, tier.name)]
        if now >= self._rolls_swept + 60.0:
            self._sweep_rolls(now)

    def _sweep_rolls(self, now: float) -> None:
        """Forget the rollups of nodes not written for longer than their tier's retention and a block, as
        Redis expires their keys: churning workers do not grow the store for ever."""
        with self._lock:
            self._rolls_swept = now
            for key, at in list(self._rolled_at.items()):
                tier = TIER_BY_NAME[key[1]]
                if at < now - tier.retention - tier.block:
                    del self._rolled_at[key]
                    self._rolls.pop(key, None)

    def _read_blocks(self, tier: Tier, starts: Sequence[float], nodes: Sequence[str]) -> list[tuple[str, float, bytes]]:
        with self._lock:
            found = [(node, self._rolls.get((node, tier.name), {})) for node in nodes]
            return [(node, start, kept[start]) for node, kept in found for start in starts if start in kept]

    def rolled_nodes(self) -> list[str]:
        with self._lock:
            return sorted({node for node, _ in self._rolls})

    def sample_count(self) -> int:
        """Samples held across all nodes (for tests and ``cache_status``-style diagnostics)."""
        with self._lock:
            return sum(len(h) for h in self._history.values())
