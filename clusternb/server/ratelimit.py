"""A per-user token bucket: ``rate`` requests per second on average, bursts of up to ``burst``.

Pure and clock-free (``now`` is an argument), so it is tested without sleeping. Keyed by the Jupyter user
name, so one user's polling script cannot starve another user's dashboard on a shared server.
"""

from __future__ import annotations

from collections import OrderedDict


class TokenBuckets:
    """One bucket per key; ``take`` answers 0.0 (allowed) or the seconds until a token is available."""

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_keys = max_keys
        # key -> (tokens, time of last refill); ordered by last use so the least recent are forgotten first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """Spend one token of ``key``'s bucket; a rate of 0 disables limiting."""
        if self.rate <= 0:
            return 0.0
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)  # a forgotten key starts again with a full bucket: harmless
        return wait
