"""In-process cache backend: a dict in LRU order with per-entry expiry and a bound on the number of entries.

Entries are kept as :class:`Entry` objects (decoded values included), so a hit costs a dict lookup and the
caller's copy (none with ``share=True``). Expired entries are dropped when touched and evicted first by LRU.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict

from clusternb.cache.base import Backend
from clusternb.cache.codec import Entry


class MemoryBackend(Backend):
    """Thread-safe LRU with TTL. ``max_entries`` bounds memory however many distinct keys are used."""

    name = "memory"
    in_process = True

    def __init__(self, max_entries: int = 2048) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, Entry]] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0

    def get(self, key: str) -> Entry | None:
        item = self._data.get(key)  # lock-free fast path: dict reads are atomic under the GIL
        if item is None:
            return None
        expires, entry = item
        if expires < time.monotonic():
            with self._lock:
                if self._data.get(key) is item:
                    del self._data[key]
            return None
        with contextlib.suppress(KeyError):  # deleted by another thread since the lookup
            self._data.move_to_end(key)  # least recently *used* goes first; atomic under the GIL
        return entry

    def set(self, key: str, entry: Entry, ttl: float) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, entry)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
                self.evictions += 1

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._data.pop(key, None) is not None

    def clear(self, prefix: str) -> int:
        with self._lock:
            doomed = [k for k in self._data if k.startswith(prefix)]
            for k in doomed:
                del self._data[k]
            return len(doomed)

    def usage(self, prefix: str) -> tuple[int, int]:
        now = time.monotonic()
        with self._lock:
            live = [e for k, (exp, e) in self._data.items() if k.startswith(prefix) and exp >= now]
        return len(live), sum(e.size for e in live)
