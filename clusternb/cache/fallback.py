"""Redis first, memory when Redis fails, Redis again as soon as it answers: the cache never breaks a call.

Whether Redis is up is not decided here: it is the :class:`~clusternb.redisio.link.RedisLink`'s one health
state, shared with the state and alert stores of the same process. While the link is failing, every call to
the Redis backend raises :class:`BackendUnavailable` at once (no network), so this backend answers from
memory at memory speed; once the link's backoff lets a call through and it succeeds, Redis is used again
and the entries made in memory during the outage are dropped (they may be older than Redis' ones)::

    using redis --(Unavailable)--> using memory --(a call after the backoff succeeds)--> using redis
                                                                                          memory entries dropped

A command Redis refuses (a full server rejecting a write, a foreign key of the wrong type) is an error of
that one call, counted by the cache, not an outage.
"""

from __future__ import annotations

from typing import Any

from clusternb.cache.base import Backend, BackendUnavailable, Leases
from clusternb.cache.codec import Entry
from clusternb.cache.memory import MemoryBackend
from clusternb.cache.redis import RedisBackend


class FallbackBackend(Backend):
    """Routes every call to Redis or, during an outage, to the memory backend."""

    name = "fallback"

    def __init__(self, primary: RedisBackend, secondary: MemoryBackend) -> None:
        self.primary = primary
        self.secondary = secondary
        self.link = primary.link
        self.link.on_recover(self._drop_outage_entries)

    def _drop_outage_entries(self) -> None:
        self.secondary.clear("")

    @property
    def active(self) -> Backend:
        return self.primary if self.link.available else self.secondary

    @property
    def leases(self) -> Leases | None:
        return self.active.leases  # Redis' while it answers; none during an outage

    def health(self) -> dict[str, Any]:
        """``cache_status()``'s view of the link: which Redis, connected or unreachable, since when, why, how often."""
        h = self.link.health
        return {
            "redis_url": self.primary.safe_url,
            "redis_state": self.link.state_text,
            "last_failure": h.last_failure,
            "last_failure_reason": h.last_error,
            "last_recovery": h.last_recovery,
            "fallbacks": h.outages,
            "down_since": h.since,
            "near_cache": "off" if self.primary.near is None else self.primary.near.state,
        }

    def get(self, key: str) -> Entry | None:
        try:
            return self.primary.get(key)
        except BackendUnavailable:
            return self.secondary.get(key)

    def set(self, key: str, entry: Entry, ttl: float) -> None:
        try:
            self.primary.set(key, entry, ttl)
        except BackendUnavailable:
            self.secondary.set(key, entry, ttl)

    async def aget(self, key: str) -> Entry | None:
        try:
            return await self.primary.aget(key)
        except BackendUnavailable:
            return self.secondary.get(key)

    async def aset(self, key: str, entry: Entry, ttl: float) -> None:
        try:
            await self.primary.aset(key, entry, ttl)
        except BackendUnavailable:
            self.secondary.set(key, entry, ttl)

    def delete(self, key: str) -> bool:
        deleted = self.secondary.delete(key)
        try:
            return self.primary.delete(key) or deleted
        except BackendUnavailable:
            return deleted

    def clear(self, prefix: str) -> int:
        cleared = self.secondary.clear(prefix)
        try:
            return cleared + self.primary.clear(prefix)
        except BackendUnavailable:
            return cleared

    def usage(self, prefix: str) -> tuple[int, int]:
        try:
            return self.primary.usage(prefix)
        except BackendUnavailable:
            return self.secondary.usage(prefix)

    async def aclose(self) -> None:
        await self.primary.aclose()

    def close(self) -> None:
        self.primary.close()
        self.secondary.close()


__all__ = ["FallbackBackend"]
