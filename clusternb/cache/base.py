"""The backend interface: raw get/set/delete/clear of encoded entries under string keys.

The public :class:`clusternb.cache.core.Cache` does namespacing, TTLs, encoding, statistics and fallback
once; a backend only stores and fetches :class:`~clusternb.cache.codec.Entry` objects. Backends raise
:class:`BackendUnavailable` when their server cannot be reached (what decides a fallback) and
:class:`~clusternb.cache.codec.DecodeError` for an entry that is not ours (a miss and an error count).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from clusternb.cache.codec import Entry
from clusternb.redisio.errors import Unavailable

#: The backend's server is unreachable, timed out or refused service: fall back, retry later. The same class as
#: :class:`clusternb.redisio.errors.Unavailable`, so a backend raises what the link raised, untouched.
BackendUnavailable = Unavailable


class Backend(ABC):
    """Raw storage of entries. Sync methods are required; async ones default to the sync ones."""

    name: str = "backend"

    @abstractmethod
    def get(self, key: str) -> Entry | None: ...

    @abstractmethod
    def set(self, key: str, entry: Entry, ttl: float) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> bool: ...

    @abstractmethod
    def clear(self, prefix: str) -> int:
        """Delete every key starting with ``prefix``; returns how many were deleted."""

    @abstractmethod
    def usage(self, prefix: str) -> tuple[int, int]:
        """(entries, bytes) stored under ``prefix``."""

    async def aget(self, key: str) -> Entry | None:
        return self.get(key)

    async def aset(self, key: str, entry: Entry, ttl: float) -> None:
        self.set(key, entry, ttl)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release this event loop's connections."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
