"""A per-user token bucket: ``rate`` requests per second on average, bursts of up to ``burst``.

Pure and clock-free (``now`` is an argument), so it is tested without sleeping. Keyed by the Jupyter user
(:func:`user_key`), so one user's polling script cannot starve another user's dashboard on a shared server;
REST requests and WebSocket messages spend from the same bucket.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jupyter_server.base.handlers import JupyterHandler


def user_key(handler: JupyterHandler) -> str:
    """The bucket key of an authenticated request: the user name; for token-authenticated requests the token
    itself (hashed), since Jupyter makes up a new anonymous user for every token request without a cookie."""
    if handler.token_authenticated:
        token = handler.identity_provider.get_token(handler) or ""
        return "token:" + hashlib.blake2b(token.encode(), digest_size=8).hexdigest()
    user = handler.current_user
    return str(getattr(user, "username", None) or user)


class TokenBuckets:
    """One bucket per key; ``take`` answers 0.0 (allowed) or the seconds until a token is available."""

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_keys = max_keys
        # key -> (tokens, time of last refill); ordered by last use so the least recent are forgotten first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket, all or none; a rate of 0 disables limiting.

        A cost above ``burst`` is charged as ``burst`` (a full bucket), so every request can be served.
        """
        if self.rate <= 0:
            return 0.0
        cost = min(float(cost), float(self.burst))
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (cost - tokens) / self.rate
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)  # a forgotten key starts again with a full bucket: harmless
        return wait
