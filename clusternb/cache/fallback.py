"""Redis first, memory when Redis fails, Redis again as soon as it answers: the cache never breaks a call.

State machine::

    using redis --(unreachable / timeout)--> using memory --(background ping succeeds)--> using redis
                   log one warning, count a fallback,          log one info line, drop the memory
                   start the recovery thread                   entries (they may be older than Redis')

Only :class:`BackendUnavailable` switches backends. A command Redis refuses (a full server rejecting a
write, a foreign key of the wrong type) is an error of that one call, counted by the cache, not an outage.
The recovery thread pings with exponential backoff capped at ``retry_max`` seconds, so a Redis that comes
back is used again within that time without restarting anything.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from clusternb.cache.base import Backend, BackendUnavailable
from clusternb.cache.codec import Entry
from clusternb.cache.memory import MemoryBackend
from clusternb.cache.redis import RedisBackend

log = logging.getLogger(__name__)


@dataclass
class Health:
    """What ``cache_status()`` reports about the Redis connection (times are epoch seconds)."""

    redis_state: str = "connected"  # connected | unreachable
    last_failure: float | None = None
    last_failure_reason: str | None = None
    last_recovery: float | None = None
    fallbacks: int = 0


class FallbackBackend(Backend):
    """Routes every call to Redis or, during an outage, to the memory backend."""

    name = "fallback"

    def __init__(
        self,
        primary: RedisBackend,
        secondary: MemoryBackend,
        retry_min: float = 0.1,
        retry_max: float = 2.0,
    ) -> None:
        self.primary = primary
        self.secondary = secondary
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.health = Health()
        self._using_primary = True
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._recovery: threading.Thread | None = None

    @property
    def active(self) -> Backend:
        return self.primary if self._using_primary else self.secondary

    def get(self, key: str) -> Entry | None:
        if self._using_primary:
            try:
                return self.primary.get(key)
            except BackendUnavailable as exc:
                self._fail(exc)
        return self.secondary.get(key)

    def set(self, key: str, entry: Entry, ttl: float) -> None:
        if self._using_primary:
            try:
                self.primary.set(key, entry, ttl)
                return
            except BackendUnavailable as exc:
                self._fail(exc)
        self.secondary.set(key, entry, ttl)

    async def aget(self, key: str) -> Entry | None:
        if self._using_primary:
            try:
                return await self.primary.aget(key)
            except BackendUnavailable as exc:
                self._fail(exc)
        return self.secondary.get(key)

    async def aset(self, key: str, entry: Entry, ttl: float) -> None:
        if self._using_primary:
            try:
                await self.primary.aset(key, entry, ttl)
                return
            except BackendUnavailable as exc:
                self._fail(exc)
        self.secondary.set(key, entry, ttl)

    def delete(self, key: str) -> bool:
        deleted = self.secondary.delete(key)
        if self._using_primary:
            try:
                deleted = self.primary.delete(key) or deleted
            except BackendUnavailable as exc:
                self._fail(exc)
        return deleted

    def clear(self, prefix: str) -> int:
        cleared = self.secondary.clear(prefix)
        if self._using_primary:
            try:
                cleared += self.primary.clear(prefix)
            except BackendUnavailable as exc:
                self._fail(exc)
        return cleared

    def usage(self, prefix: str) -> tuple[int, int]:
        if self._using_primary:
            try:
                return self.primary.usage(prefix)
            except BackendUnavailable as exc:
                self._fail(exc)
        return self.secondary.usage(prefix)

    async def aclose(self) -> None:
        await self.primary.aclose()

    def close(self) -> None:
        self._closed.set()
        if self._recovery is not None:
            self._recovery.join(timeout=self.retry_max + 1)
        self.primary.close()
        self.secondary.close()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if not self._using_primary:
                return
            self._using_primary = False
            h = self.health
            h.redis_state = "unreachable"
            h.last_failure = time.time()
            h.last_failure_reason = str(exc)
            h.fallbacks += 1
            log.warning("clusternb cache: %s; serving from memory until it answers again", exc)
            self._recovery = threading.Thread(target=self._recover, name="clusternb-cache-recovery", daemon=True)
            self._recovery.start()

    def _recover(self) -> None:
        delay = self.retry_min
        while not self._closed.wait(delay):
            try:
                self.primary.ping()
            except BackendUnavailable:
                delay = min(delay * 2, self.retry_max)
                continue
            with self._lock:
                self.secondary.clear("")  # entries made during the outage may be older than Redis' ones
                self._using_primary = True
                self.health.redis_state = "connected"
                self.health.last_recovery = time.time()
            log.warning("clusternb cache: redis at %s answers again; using it", self.primary.safe_url)
            return
