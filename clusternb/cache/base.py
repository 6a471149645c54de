"""The backend interface: raw get/set/delete/clear of encoded entries under string keys.

The public :class:`clusternb.cache.core.Cache` does namespacing, TTLs, encoding, statistics and fallback
once; a backend only stores and fetches :class:`~clusternb.cache.codec.Entry` objects. Backends raise
:class:`BackendUnavailable` when their server cannot be reached (what decides a fallback) and
:class:`~clusternb.cache.codec.DecodeError` for an entry that is not ours (a miss and an error count).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

from clusternb.cache.codec import Entry
from clusternb.redisio.errors import Unavailable

#: The backend's server is unreachable, timed out or refused service: fall back, retry later. The same class as
#: :class:`clusternb.redisio.errors.Unavailable`, so a backend raises what the link raised, untouched.
BackendUnavailable = Unavailable


class Leases(Protocol):
    """A store shared between processes where one process at a time computes a key (Redis ``SET NX PX``)."""

    def get(self, key: str) -> Entry | None: ...

    def acquire_lease(self, key: str, ttl: float) -> str | None:
        """A token when the caller now holds ``key``'s lease for ``ttl`` seconds; None when another holds it."""

    def release_lease(self, key: str, token: str) -> None: ...


class Backend(ABC):
    """Raw storage of entries. Sync methods are required; async ones default to the sync ones."""

    name: str = "backend"
    #: Whether entries live in this process's memory, so a lookup is a dict read that never blocks (the REST
    #: handlers then peek on the event loop); False for anything that may do I/O, a fallback included.
    in_process: bool = False

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

    # What the cache asks of every backend, answered here for a plain one (one store, no server to watch).

    @property
    def active(self) -> Backend:
        """The backend answering now: this one, or the one a fallback routes to at this moment."""
        return self

    @property
    def leases(self) -> Leases | None:
        """Where a process computing a key takes a lease, so other processes wait for its result instead of
        computing it too: a store shared between processes that answers now (Redis); None for this process
        alone (its own single-flight is enough)."""
        return None

    def health(self) -> dict[str, Any]:
        """``cache_status()``'s view of the connection (``redis_url``, ``redis_state``, ...); {} without one."""
        return {}

    async def aget(self, key: str) -> Entry | None:
        return self.get(key)

    async def aset(self, key: str, entry: Entry, ttl: float) -> None:
        self.set(key, entry, ttl)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release this event loop's connections."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
