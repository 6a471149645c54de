"""Reading raw history from Redis: both keys of each node, compact and JSON records, checked where they enter.

Kept apart from :mod:`clusternb.state.redis` (latest, registry, liveness, writes) because history has its own
keys and formats: this version writes compact records (:mod:`clusternb.state.raw_codec`) under
``samples:<node>`` and still reads the JSON the previous version wrote under ``hist:<node>`` until it expires
(see :mod:`clusternb.state.redis_scripts` for why two keys). A record that does not inflate, or whose JSON is
rejected (:meth:`~clusternb.state.redis.RedisStateStore._decode_all`), or whose time is too far ahead of this
host's clock, is skipped, counted and deleted from the key it was found in.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar, cast

from clusternb.model import TIME_MAX, NodeSnapshot, SchemaError
from clusternb.redisio.link import RedisLink
from clusternb.rejects import Rejections
from clusternb.state import raw_codec

T = TypeVar("T")


class RedisHistory:
    """``history()`` of :class:`~clusternb.state.redis.RedisStateStore` and where it lives."""

    prefix: str
    link: RedisLink
    max_clock_skew: float
    max_samples: int
    rejections: Rejections
    _k_seen: str

    def _refusable(self, what: str, read: Callable[[Any], Any], empty: T) -> T:
        raise NotImplementedError  # the store's

    def _decode_all(self, records: list[bytes], kind: str = "latest") -> list[NodeSnapshot | None]:
        raise NotImplementedError  # the store's

    def hist_key(self, node: str) -> str:
        """Where this version keeps ``node``'s history (compact records)."""
        return f"{self.prefix}samples:{node}"

    def legacy_hist_key(self, node: str) -> str:
        """Where clusternb kept it before as JSON: read (until it expires), never written."""
        return f"{self.prefix}hist:{node}"

    def history(
        self, since: float, until: float | None = None, nodes: Collection[str] | None = None
    ) -> list[NodeSnapshot]:
        if nodes is None:
            members: list[bytes] = self._refusable("seen", lambda c: c.zrange(self._k_seen, 0, -1), [])
            names = [n.decode("utf-8", "replace") for n in members]
        else:
            names = list(nodes)
        if not names:
            return []
        high = repr(min(float(until), TIME_MAX)) if until is not None else "+inf"
        low = repr(max(float(since), 0.0))

        keys = [key for name in names for key in (self.hist_key(name), self.legacy_hist_key(name))]

        def read(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.zrangebyscore(key, low, high)
            return cast(list[Any], pipe.execute(raise_on_error=False))

        replies = self.link.call(read)
        limit = time.time() + self.max_clock_skew
        out: list[NodeSnapshot] = []
        for i, (key, records) in enumerate(zip(keys, replies, strict=True)):
            name = names[i // 2]
            if isinstance(records, Exception):  # WRONGTYPE: another program's key under our name
                self.rejections.add("history", name[:64], f"history key unreadable: {records}")
                continue
            if not records:
                continue
            jsons = self._unpacked(name, records)
            decoded = iter(self._decode_all([j for j in jsons if j is not None], kind="history"))
            snaps = [None if j is None else next(decoded) for j in jsons]
            bad = [r for r, snap in zip(records, snaps, strict=True) if snap is None or snap.time > limit]
            out.extend(snap for snap in snaps if snap is not None and snap.time <= limit)
            if bad:
                self.link.attempt(functools.partial(_zrem, key, bad))
        return out

    def _unpacked(self, name: str, records: list[bytes]) -> list[bytes | None]:
        """The JSON of each history record (compact or not), newest first up to ``max_samples *
        RECORD_BUDGET`` inflated bytes; None, counted (and so pruned), for one that does not inflate and for
        every record older than the one that crossed the budget."""
        out: list[bytes | None] = [None] * len(records)
        budget, total, unpack = self.max_samples * raw_codec.RECORD_BUDGET, 0, raw_codec.unpack
        for i in range(len(records) - 1, -1, -1):  # oldest first as read: the newest are kept
            try:
                record = unpack(records[i])
            except SchemaError as exc:
                self.rejections.add("history", name[:64], str(exc))
                continue
            total += len(record)
            if total > budget:
                for _ in range(i + 1):
                    self.rejections.add("history", name[:64], f"history past {budget:,} bytes in one read")
                break
            out[i] = record
        return out


def _zrem(key: str, members: list[bytes], client: Any) -> Any:
    return client.zrem(key, *members)
