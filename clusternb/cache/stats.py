"""Per-namespace cache statistics: hits, misses, loads, errors and the time each get took.

Counters are plain integers bumped under the GIL; a rare lost increment under heavy thread contention is
an accepted cost next to a lock on every hit. Get times are kept in a bounded window for mean and p99.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class NamespaceStats:
    """Counters of one namespace. A cached ``None`` or empty frame found is a hit, as it should be."""

    hits: int = 0
    misses: int = 0
    loads: int = 0  # times the cached function actually ran
    errors: int = 0  # entries that did not decode, writes the backend refused, values that cannot be cached
    get_ns: deque[int] = field(default_factory=lambda: deque(maxlen=4096))

    def record(self, entry: T, elapsed_ns: int) -> T:
        """Count one lookup (a hit when ``entry`` is not None) and its duration; returns ``entry``."""
        self.get_ns.append(elapsed_ns)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def get_times_us(self) -> tuple[float, float]:
        """(mean, p99) of recent gets in microseconds; (0, 0) before the first get."""
        samples = sorted(self.get_ns)
        if not samples:
            return 0.0, 0.0
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        return sum(samples) / len(samples) / 1000.0, p99 / 1000.0
