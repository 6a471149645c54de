"""Records that failed validation where they entered: counted per kind, node and reason, and shown to users.

A bad record (garbage, another program's value, a schema-valid record with absurd values, a sample time far in
the future) is skipped by the reader that found it, counted here, and removed from Redis when the reader can
prove it is still the same bytes. ``cluster_status()`` shows the count and the most frequent reasons, so an
operator learns that *something* writes bad data, and what, instead of seeing it silently vanish.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson

#: Distinct (kind, node, reason) entries kept; past it new ones are folded into one "(others)" entry, so a
#: flood of garbage with ever-new node names cannot grow this process's memory.
MAX_ENTRIES = 256
_TEXT_MAX = 64


def node_of(record: Any) -> str:
    """The ``node`` a rejected JSON record claims to be about (shortened), or ``"(unknown)"``."""
    try:
        data = orjson.loads(record) if isinstance(record, bytes | str) else record
    except orjson.JSONDecodeError:
        return "(unknown)"
    node = data.get("node") if isinstance(data, dict) else None
    if not isinstance(node, str) or not node:
        return "(unknown)"
    return node if len(node) <= _TEXT_MAX else node[: _TEXT_MAX - 1] + "…"


class Rejections:
    """Thread-safe counters of rejected records: ``add("latest", "node-3", "cpu_percent above 100")``."""

    def __init__(self) -> None:
        self.total = 0
        self.last_at: float | None = None
        self._counts: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, node: str, reason: str) -> None:
        key = (kind, node, reason[:160])
        with self._lock:
            if key not in self._counts and len(self._counts) >= MAX_ENTRIES:
                key = (kind, "(others)", "more kinds of rejected records than are tracked")
            self._counts[key] = self._counts.get(key, 0) + 1
            self.total += 1
            self.last_at = time.time()

    def counts(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._counts)

    def by_reason(self) -> dict[str, int]:
        """Counts per reason, all nodes together (for ``stats()`` and logs)."""
        out: dict[str, int] = {}
        for (_, _, reason), n in self.counts().items():
            out[reason] = out.get(reason, 0) + n
        return out

    def summary(self, limit: int = 5) -> str:
        """The most frequent rejections as one line: ``latest node-3: cpu_percent ... (x2); ...``."""
        top = sorted(self.counts().items(), key=lambda kv: -kv[1])[:limit]
        parts = [f"{kind} {node}: {reason} (x{n})" for (kind, node, reason), n in top]
        more = len(self.counts()) - len(top)
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
