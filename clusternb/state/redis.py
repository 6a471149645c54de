"""Cluster-mode state store on Redis: every agent writes here, every kernel, server and panel reads here.

The key layout, why history is a sorted set, and what each write script does (trim, prune, repair): see
:mod:`clusternb.state.redis_scripts`, where the scripts are.

Reading is data only, validated where it enters: records are JSON checked for types and physical bounds by
:func:`~clusternb.model.decode_snapshot_json` in one C pass; a sample time further ahead of this host's clock
than ``max_clock_skew`` is rejected too. A rejected record (another schema version, garbage, a pickle, absurd
values) is skipped, counted per node and reason in :class:`~clusternb.rejects.Rejections`, and deleted from
Redis if it is still the same bytes, so nothing bad is immortal; nothing is ever unpickled or evaluated.
A key of the wrong type reads as empty and is counted the same way.

Errors: every call goes through the process's :class:`~clusternb.redisio.link.RedisLink`, so failures arrive
as :class:`~clusternb.redisio.errors.Unavailable` (fall back: :class:`~clusternb.state.fallback.MirroredStore`)
or :class:`~clusternb.redisio.errors.Refused`, never as redis-py exceptions, and the link's backoff applies.
"""

from __future__ import annotations

import functools
import math
import operator
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import orjson

from clusternb.config import ClusterNB
from clusternb.model import (
    SCHEMA_VERSION,
    NodeSnapshot,
    SchemaError,
    decode_snapshot_json,
    decode_snapshots_json,
)
from clusternb.redisio.errors import Refused
from clusternb.redisio.link import LinkOptions, RedisLink
from clusternb.redisio.scripts import LinkScript
from clusternb.rejects import Rejections, node_of
from clusternb.state import raw_codec
from clusternb.state.base import Liveness, StateStore
from clusternb.state.bounds import HistoryBounds
from clusternb.state.redis_history import RedisHistory
from clusternb.state.redis_rollups import RedisRolling
from clusternb.state.redis_scripts import LEAVE, LIVENESS, PREFIX, PRUNE_HASH_VALUES, PUT
from clusternb.state.rollup import Roller

T = TypeVar("T")


class RedisStateStore(RedisHistory, RedisRolling, StateStore):
    """The :class:`StateStore` of cluster mode, over ``link`` (or a URL, with its own link). Thread-safe: reads use
    redis-py's pool; puts take turns on one held connection on a standalone server (``redisio/held_script.py``).

    ``latest()`` is one HVALS whatever the number of nodes, on a standalone server and on a cluster alike (the
    hash lives on one shard); ``put`` and ``leave`` are one script call each; ``liveness()`` is one script call;
    ``history`` is one round trip for the node list (when not given) and one pipeline across nodes
    (:mod:`clusternb.state.redis_history`). Rollups
    (folded from what ``put`` is given, written when a minute closes): :mod:`clusternb.state.redis_rollups`.

    ``bounds``: how much history it keeps (:class:`~clusternb.state.bounds.HistoryBounds`; default: its
    defaults). ``socket_timeout``/``connect_timeout``: those of its own link, when ``link`` is a URL.
    """

    #: Where every key of this store begins (see the key layout in the module docstring).
    prefix = PREFIX

    def __init__(
        self,
        link: RedisLink | str,
        bounds: HistoryBounds | None = None,
        *,
        socket_timeout: float = 0.25,
        connect_timeout: float = 0.5,
        rejections: Rejections | None = None,
    ) -> None:
        self._owns_link = isinstance(link, str)
        if isinstance(link, str):  # a URL: this store's own link (tests, tools); a client shares its link
            link = RedisLink(link, LinkOptions(socket_timeout=socket_timeout, connect_timeout=connect_timeout))
        self.link = link
        self.url = link.safe_url
        bounds = bounds if bounds is not None else HistoryBounds()
        self.window = float(bounds.window)
        self.max_samples = int(bounds.max_samples)
        self.max_clock_skew = float(bounds.max_clock_skew)
        self.rejections = rejections if rejections is not None else Rejections()
        self._ttl = max(1, math.ceil(self.window))
        self._k_latest = self.prefix + "latest"
        self._k_seen = self.prefix + "seen"
        self._k_intervals = self.prefix + "intervals"
        self._k_departed = self.prefix + "departed"
        self._k_gen = self.prefix + "gen"
        self._put_keys = (self._k_latest, self._k_seen, self._k_intervals, self._k_departed)
        #: What :meth:`liveness` reads, in its order, for a script elsewhere that reads it too (the watchdog's).
        self.liveness_keys = (self._k_seen, self._k_intervals, self._k_departed)
        self._put_script = LinkScript(link, PUT, held=True)  # every sample of every agent: the cheapest call
        self._leave_script = LinkScript(link, LEAVE)
        self._prune_script = LinkScript(link, PRUNE_HASH_VALUES)
        self._liveness_script = LinkScript(link, LIVENESS)
        self._lock = threading.Lock()
        # The previous latest()'s records and their snapshots (None: rejected), position by position.
        self._decoded: tuple[list[bytes], list[NodeSnapshot | None]] = ([], [])
        self.puts = 0
        self._rollup_scripts()
        self.roller = Roller(self._load_block)

    @classmethod
    def from_settings(
        cls, settings: ClusterNB, link: RedisLink | None = None, rejections: Rejections | None = None
    ) -> RedisStateStore:
        """The store a :class:`ClusterNB` configuration describes (``redis_url``, timeouts, history bounds)."""
        return cls(
            link if link is not None else RedisLink.from_settings(settings),
            HistoryBounds.from_settings(settings),
            rejections=rejections,
        )

    @property
    def skipped(self) -> int:
        """Records rejected so far (all kinds)."""
        return self.rejections.total

    # -- writes ---------------------------------------------------------------------------------------------

    def put(self, snapshot: NodeSnapshot) -> None:
        """One script, one round trip: latest, registry, departure cleared, history trimmed, pruning, generation."""
        t = snapshot.time
        record = orjson.dumps(snapshot.to_dict())
        self._put_script(
            (*self._put_keys, self.hist_key(snapshot.node), self._k_gen, self.legacy_hist_key(snapshot.node)),
            (
                snapshot.node,
                record,
                repr(t),
                repr(t - self.window),
                -(self.max_samples + 1),
                self._ttl,
                _gen_seed(),
                self.window,
                repr(snapshot.interval_s),
                repr(self.max_clock_skew),
                raw_codec.pack(record),
            ),
        )
        self.puts += 1
        self._roll(snapshot)

    def leave(self, node: str, when: float) -> None:
        self._flush_rollups(node)
        self._leave_script((self._k_departed, self._k_gen), (node, repr(float(when)), self._ttl, _gen_seed()))

    # -- reads ----------------------------------------------------------------------------------------------

    def latest(self) -> list[NodeSnapshot]:
        """One HVALS for every node; a record unchanged since the previous call reuses its decoded snapshot.

        HVALS, not HGETALL: every record names its node, and Redis answers HVALS in about half the time
        (10,000 records: 6-7 ms against 10-14 ms). A Redis hash lists its values in the same order from one
        call to the next unless it rehashes (it grew, or shrank), so records are compared with the previous
        reply position by position, in C:

        - nothing changed (a plain cache miss): the previous snapshots, no record touched;
        - most records changed (every node published since the last read, or the hash reordered): all are
          decoded in one C-level pass (Python runs only each record's short used-against-total test);
        - otherwise, one by one: an unchanged record keeps its snapshot, a changed one is decoded.

        A rejected record is counted and pruned (see the module docstring); a sample time too far ahead of
        this host's clock is checked on every read, since "too far" moves with the clock.
        """
        records: list[bytes] = self._refusable("latest", lambda c: c.hvals(self._k_latest), [])
        before, kept = self._decoded
        clean = None not in kept  # the last read rejected nothing
        if clean and records == before:
            snaps = kept
        elif clean and sum(map(operator.eq, records, before)) < len(records) // 2:
            snaps = self._decode_all(records)
        else:
            snaps = [
                old if old is not None and record == was else self._decode(record)
                for record, was, old in zip(records, before, kept, strict=False)
            ]
            snaps.extend(map(self._decode, records[len(snaps) :]))  # the reply grew
        self._decoded = (records, snaps)  # one swap: concurrent callers each see a matching pair
        limit = time.time() + self.max_clock_skew
        rejected = None in snaps
        out = [snap for snap in snaps if snap is not None] if rejected else cast(list[NodeSnapshot], list(snaps))
        if max(map(_TIME, out), default=0.0) <= limit and not rejected:  # the common case, in C
            return out
        bad: list[bytes] = []
        ahead = f"sample time ahead of this host's clock by more than max_clock_skew ({self.max_clock_skew:g} s)"
        for record, snap in zip(records, snaps, strict=True):
            if snap is None:
                bad.append(record)
            elif snap.time > limit:  # "too far ahead" moves with the clock: checked on every read
                self.rejections.add("latest", snap.node, ahead)
                bad.append(record)
        self.link.attempt(lambda c: self._prune_script.run_on(c, (self._k_latest,), bad[:500]))
        return [snap for snap in out if snap.time <= limit]

    def departed(self) -> Mapping[str, float]:
        pairs: dict[bytes, bytes] = self._refusable("departed", lambda c: c.hgetall(self._k_departed), {})
        return self._departures(pairs.items())

    def liveness(self) -> Liveness:
        """One script call: the registry's times, the intervals and the departures; no snapshot is decoded.

        A watchdog over 10,000 nodes reads a few hundred kilobytes of numbers instead of every record.
        """
        return self.parse_liveness(self._liveness_script(self.liveness_keys))

    def parse_liveness(self, reply: list[list[bytes]]) -> Liveness:
        """Decode the reply of the three reads :attr:`liveness_keys` name (ZRANGE WITHSCORES, HGETALL, HGETALL).

        A node in the registry without an interval entry (last written by an older clusternb, whose records
        carry the interval but which kept no ``intervals`` hash) gets it from its record, one HMGET for all
        such nodes, so a node that went silent before an upgrade is still watched. Times must be plausible
        (not after ``max_clock_skew`` from now), intervals positive and at most a day.
        """
        seen, intervals, departed = reply
        every = dict(zip(intervals[::2], intervals[1::2], strict=True))
        every.update(self._intervals_from_records([f for f in seen[::2] if f not in every]))
        limit = time.time() + self.max_clock_skew
        beats: dict[str, tuple[float, float]] = {}
        bad: list[bytes] = []  # registry entries to prune
        bad_intervals: list[bytes] = []  # interval entries to prune (the record's own interval is used then)
        for field, score in zip(seen[::2], seen[1::2], strict=True):
            raw_interval = every.get(field)
            try:
                when, interval = float(score), float(raw_interval) if raw_interval is not None else math.nan
                name = field.decode()
            except (ValueError, UnicodeDecodeError):
                self.rejections.add("registry", "(unknown)", "not a node, a time and an interval")
                if not _is_number(score):
                    bad.append(field)
                if raw_interval is not None and not _is_number(raw_interval):
                    bad_intervals.append(field)
                continue
            if not (0 <= when <= limit):
                self.rejections.add("registry", name[:64], "time outside the past window or ahead of the clock")
                bad.append(field)
            elif math.isfinite(interval) and 0 < interval <= 86_400:
                beats[name] = (when, interval)
            else:
                self.rejections.add("registry", name[:64], "no valid interval")
                bad_intervals.append(field)
        if bad or bad_intervals:  # a ghost would otherwise be watched (or alerted on) until the window prunes it
            self.link.attempt(functools.partial(_forget, self._k_seen, self._k_intervals, bad, bad_intervals))
        return Liveness(beats, self._departures(zip(departed[::2], departed[1::2], strict=True)))

    def _intervals_from_records(self, fields: list[bytes]) -> dict[bytes, bytes]:
        if not fields:
            return {}
        out: dict[bytes, bytes] = {}
        records = self._refusable("latest", lambda c: c.hmget(self._k_latest, fields), [None] * len(fields))
        for field, record in zip(fields, records, strict=True):
            snap = self._decode(record) if record is not None else None
            if snap is not None:
                out[field] = repr(snap.interval_s).encode()
        return out

    def generation(self) -> int:
        raw = self._refusable("generation", lambda c: c.get(self._k_gen), None)
        if raw is None:
            return 0
        try:
            return int(raw)
        except ValueError:
            self.rejections.add("generation", "(unknown)", "generation counter is not an integer")
            return 0

    # -- diagnostics and lifecycle --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What this store did, for ``cache_status``-style diagnostics. Local counters only: no round trip."""
        return {
            "backend": "redis",
            "url": self.url,
            "prefix": self.prefix,
            "puts": self.puts,
            "skipped": self.rejections.total,
            "skipped_by_reason": self.rejections.by_reason(),
        }

    def close(self) -> None:
        self._flush_rollups()
        self._put_script.close()
        if self._owns_link:
            self.link.close()

    # -- decoding and rejecting -----------------------------------------------------------------------------

    def _refusable(self, what: str, read: Callable[[Any], Any], empty: T) -> T:
        """``read`` through the link; a key Redis refuses to read (WRONGTYPE) is counted and reads as ``empty``.
        ``Unavailable`` propagates: the caller's fallback decides."""
        try:
            return cast(T, self.link.call(read))
        except Refused as exc:
            self.rejections.add(what, "(key)", f"key unreadable: {exc.reason}")
            return empty

    def _departures(self, pairs: Iterable[tuple[bytes, bytes]]) -> dict[str, float]:
        out: dict[str, float] = {}
        bad: list[bytes] = []
        limit = time.time() + self.max_clock_skew
        for node, when in pairs:
            try:
                value = float(when)
                name = node.decode()
            except (ValueError, UnicodeDecodeError):
                self.rejections.add("departed", "(unknown)", "not a node and a time")
                bad.append(node)
                continue
            if 0 <= value <= limit:
                out[name] = value
            else:
                self.rejections.add("departed", name[:64], "departure time outside what a clock can show")
                bad.append(node)
        if bad:
            self.link.attempt(functools.partial(_hdel, self._k_departed, bad))
        return out

    def _decode_all(self, records: list[bytes], kind: str = "latest") -> list[NodeSnapshot | None]:
        """Each record's snapshot, None for those rejected: all in one C-level pass when every one is good."""
        try:
            return cast(list[NodeSnapshot | None], decode_snapshots_json(records))
        except SchemaError:
            return [self._decode(record, kind) for record in records]  # find and count the bad ones

    def _decode(self, record: bytes, kind: str = "latest") -> NodeSnapshot | None:
        try:
            return decode_snapshot_json(record)  # every good record: one pass in C
        except SchemaError as exc:
            self.rejections.add(kind, node_of(record), _reason(record, exc))
            return None


def _reason(record: bytes, exc: SchemaError) -> str:
    """Why a record was rejected, in words an operator can act on."""
    try:
        data = orjson.loads(record)  # orjson rejects anything that is not JSON (a pickle included) unread
    except orjson.JSONDecodeError:
        return "not JSON"
    if not isinstance(data, dict):
        return "not a snapshot"
    if data.get("schema") != SCHEMA_VERSION:
        return "other schema version"
    return f"invalid snapshot: {exc}"


_TIME = operator.attrgetter("time")


def _hdel(key: str, fields: list[bytes], client: Any) -> Any:
    return client.hdel(key, *fields)


def _forget(seen: str, intervals: str, nodes: list[bytes], bad_intervals: list[bytes], client: Any) -> Any:
    """Drop registry entries and interval entries (one slot: one pipeline, one round trip)."""
    pipe = client.pipeline(transaction=False)
    if nodes:
        pipe.zrem(seen, *nodes)
    if bad_intervals:
        pipe.hdel(intervals, *bad_intervals)
    return pipe.execute()


def _is_number(raw: Any) -> bool:
    try:
        float(raw)
    except (TypeError, ValueError):
        return False
    return True


def _gen_seed() -> int:
    # Microseconds since the epoch: far above any count a previous Redis life reached, below 2**53.
    return int(time.time() * 1_000_000)
