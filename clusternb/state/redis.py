"""Cluster-mode state store on Redis: every agent writes here, every kernel, server and panel reads here.

Key layout (``P`` = ``clusternb:v{SCHEMA_VERSION}:state:``; the version in the prefix keeps two schema
versions of clusternb on one Redis from ever reading each other's keys)::

    P latest          HASH    node -> snapshot JSON (orjson of NodeSnapshot.to_dict(), carries "schema")
    P seen            ZSET    node -> sample time of its latest snapshot (the registry; drives pruning)
    P intervals       HASH    node -> its sampling interval (with ``seen``: the liveness view, no JSON to decode)
    P departed        HASH    node -> time it left cleanly (``leave``); the node's next ``put`` deletes it
    P hist:{node}     ZSET    snapshot JSON scored by its sample time: that node's bounded history
    P gen             STRING  the generation counter, INCRed by every put and leave

Why a sorted set per node for history, not a stream: history is queried by *sample* time, which each agent's
clock sets. Stream IDs must grow monotonically, so they would carry either the server's time (then a range
query by sample time is wrong by the agent's clock skew) or the sample time (then a clock stepping back makes
XADD fail). A ZSET indexes exactly by sample time in any order, ``ZRANGEBYSCORE`` answers
``since <= time <= until`` inclusively, and the window trim (``ZREMRANGEBYSCORE``) and the hard cap
(``ZREMRANGEBYRANK``) run in the same script as the write. Memory is no worse: for 610-byte records a ZSET
took 727 bytes per sample against 775 for a stream (Redis 7.0, ``MEMORY USAGE``); the JSON dominates both.

A put is one Lua script (``EVALSHA`` on a held connection, see ``held_script.py``; loaded again after a Redis
restart): it writes the latest record, the registry and the history, trims, sets expiries, prunes and bumps
the generation, atomically like a MULTI. One command instead of fourteen is what keeps an agent's publish
cheap: redis-py spends tens of microseconds of Python per command packed and parsed, which across a MULTI
cost more CPU than the sample.

Bounds: each put trims its node's history to ``window`` seconds before the new sample and to ``max_samples``
entries, and sets every key's expiry to ``window``: a history nobody writes disappears, and so does a whole
cluster that went quiet. The same script prunes nodes whose last sample is older than the window (by the
writer's clock and by the server's, so one agent with a clock far ahead cannot wipe the others) from
``latest``, ``seen``, ``intervals`` and ``departed``. Redis Cluster is not supported (the script touches
several keys that are not hash-tagged together).

The generation counter is seeded (``SET NX``) with the current time in microseconds before its first INCR, so
after a Redis restart without persistence it still grows past every value readers cached before.

Reading is data only: records are JSON validated by :meth:`NodeSnapshot.from_dict`. A record of another schema
version, garbage bytes or a pickle are skipped and counted in :attr:`RedisStateStore.skipped` and
:meth:`RedisStateStore.stats`; nothing is ever unpickled or evaluated.

Errors: Redis failures propagate as ``redis`` exceptions (``redis.ConnectionError``, ``redis.TimeoutError``,
``redis.ResponseError``, all ``redis.RedisError``). The store makes no fallback decision: the agent retries
with backoff, the query layer decides what to show. A read is retried once on a connection error or a timeout
(a pooled connection dies when Redis restarts), so it costs at most about twice its timeouts; a put is retried
on a connection error only, so a hung Redis costs an agent one timeout per sample.
"""

from __future__ import annotations

import math
import operator
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any, cast

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from clusternb.config import ClusterNB, mask_url
from clusternb.model import SCHEMA_VERSION, NodeSnapshot, SchemaError, decode_snapshot_json, decode_snapshots_json
from clusternb.state.base import Liveness, StateStore
from clusternb.state.held_script import HeldScript

PREFIX = f"clusternb:v{SCHEMA_VERSION}:state:"

# One put. KEYS: latest, seen, intervals, departed, hist, gen.
# ARGV: node, record, sample time, oldest time kept (time - window), last rank dropped by the cap (negative),
# expiry in seconds, generation seed, window in seconds, the node's interval.
# Nodes whose last sample is older than the window are pruned, judged by the writer's sample clock and by the
# server's clock (TIME - window), whichever is earlier; so are departures older than that. Returns the
# number of nodes pruned. A script stops at its first failing command (a MULTI would run the rest), so the
# latest record and the generation come first: if the history key is unusable (another program's key under
# our name), readers still see the new sample, never a new record behind an old generation.
_PUT = """
local node, record, t = ARGV[1], ARGV[2], ARGV[3]
redis.call('SET', KEYS[6], ARGV[7], 'NX')
redis.call('HSET', KEYS[1], node, record)
redis.call('ZADD', KEYS[2], t, node)
redis.call('HSET', KEYS[3], node, ARGV[9])
redis.call('HDEL', KEYS[4], node)
redis.call('INCR', KEYS[6])
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) + tonumber(now[2]) / 1000000 - tonumber(ARGV[8])
if tonumber(ARGV[4]) < cutoff then cutoff = tonumber(ARGV[4]) end
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff, 'LIMIT', 0, 500)
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
  redis.call('HDEL', KEYS[3], unpack(gone))
  redis.call('HDEL', KEYS[4], unpack(gone))
end
local left = redis.call('HGETALL', KEYS[4])
for i = 1, #left, 2 do
  local when = tonumber(left[i + 1])
  if when == nil or when < cutoff then redis.call('HDEL', KEYS[4], left[i]) end
end
redis.call('ZADD', KEYS[5], t, record)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[5], 0, ARGV[5])
redis.call('EXPIRE', KEYS[5], ARGV[6])
return #gone
"""


def liveness_reads_lua(first_key: int) -> str:
    """Lua for the three reads of :meth:`RedisStateStore.liveness` (registry with scores, intervals, departures)
    as one table, their keys at ``KEYS[first_key]`` onwards in :attr:`RedisStateStore.liveness_keys` order: the
    reply :meth:`RedisStateStore.parse_liveness` decodes, for any script that reads the liveness view."""
    k = first_key
    return (
        f"{{redis.call('ZRANGE', KEYS[{k}], 0, -1, 'WITHSCORES'), redis.call('HGETALL', KEYS[{k + 1}]), "
        f"redis.call('HGETALL', KEYS[{k + 2}])}}"
    )


_LIVENESS = f"return {liveness_reads_lua(1)}"


class RedisStateStore(StateStore):
    """The :class:`StateStore` of cluster mode. Thread-safe: reads use redis-py's pool; puts take turns on one
    held connection (see ``held_script.py``).

    ``latest()`` is one HVALS whatever the number of nodes; ``put`` is one script call and ``leave`` one MULTI;
    ``liveness()`` is one script call; ``history`` is one round trip for the node list (when not given) and one
    pipeline across nodes.
    A ``client`` passed in instead of a URL must leave ``decode_responses`` off: records are read as bytes.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        window: float = 3600.0,
        max_samples: int = 20_000,
        socket_timeout: float = 0.25,
        connect_timeout: float = 0.5,
        health_check_interval: float = 30.0,
        retries: int = 1,
        prefix: str = PREFIX,
    ) -> None:
        if client is None:
            if not url:
                raise ValueError("RedisStateStore needs a Redis URL (redis://, rediss:// or unix://)")
            # from_url validates the scheme and raises ValueError on a malformed URL; it does not connect yet.
            client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                health_check_interval=health_check_interval,
                retry=Retry(NoBackoff(), retries),
            )
        self.url = mask_url(url or "")
        self.client = client
        self.window = float(window)
        self.max_samples = int(max_samples)
        self.prefix = prefix
        self._ttl = max(1, math.ceil(self.window))
        self._k_latest = prefix + "latest"
        self._k_seen = prefix + "seen"
        self._k_intervals = prefix + "intervals"
        self._k_departed = prefix + "departed"
        self._k_gen = prefix + "gen"
        self._put_keys = (self._k_latest, self._k_seen, self._k_intervals, self._k_departed)
        #: What :meth:`liveness` reads, in its order, for a script elsewhere that reads it too (the watchdog's).
        self.liveness_keys = (self._k_seen, self._k_intervals, self._k_departed)
        self._put_script = HeldScript(client, _PUT)  # every sample of every agent: the cheapest call there is
        self._liveness_script = client.register_script(_LIVENESS)
        self._lock = threading.Lock()
        # The previous latest()'s records and their snapshots (None: skipped), position by position.
        self._decoded: tuple[list[bytes], list[NodeSnapshot | None]] = ([], [])
        self.skipped = 0
        self.puts = 0
        self._skip_reasons: dict[str, int] = {}
        self.last_skip: str | None = None

    @classmethod
    def from_settings(cls, settings: ClusterNB, **overrides: Any) -> RedisStateStore:
        """The store a :class:`ClusterNB` configuration describes (``redis_url``, timeouts, history bounds)."""
        kwargs: dict[str, Any] = {
            "window": settings.history_window,
            "max_samples": settings.history_max_samples,
            "socket_timeout": settings.redis_socket_timeout,
            "connect_timeout": settings.redis_connect_timeout,
        }
        kwargs.update(overrides)
        return cls(settings.redis_url, **kwargs)

    def hist_key(self, node: str) -> str:
        return f"{self.prefix}hist:{node}"

    # -- writes ---------------------------------------------------------------------------------------------

    def put(self, snapshot: NodeSnapshot) -> None:
        """One script, one round trip: latest, registry, departure cleared, history trimmed, pruning, generation."""
        t = snapshot.time
        self._put_script(
            (*self._put_keys, self.hist_key(snapshot.node), self._k_gen),
            (
                snapshot.node,
                orjson.dumps(snapshot.to_dict()),
                repr(t),
                repr(t - self.window),
                -(self.max_samples + 1),
                self._ttl,
                _gen_seed(),
                self.window,
                repr(snapshot.interval_s),
            ),
        )
        self.puts += 1

    def leave(self, node: str, when: float) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._k_gen, _gen_seed(), nx=True)
        pipe.hset(self._k_departed, node, repr(float(when)))
        pipe.expire(self._k_departed, self._ttl)
        pipe.incr(self._k_gen)
        pipe.execute()

    # -- reads ----------------------------------------------------------------------------------------------

    def latest(self) -> list[NodeSnapshot]:
        """One HVALS for every node; a record unchanged since the previous call reuses its decoded snapshot.

        HVALS, not HGETALL: every record names its node, and Redis answers HVALS in about half the time
        (10,000 records: 6-7 ms against 10-14 ms). A Redis hash lists its values in the same order from one
        call to the next unless it rehashes (it grew, or shrank), so records are compared with the previous
        reply position by position, in C:

        - nothing changed (a plain cache miss): the previous snapshots, no record touched;
        - most records changed (every node published since the last read, or the hash reordered): all are
          decoded in one C-level pass, no Python code per record;
        - otherwise, one by one: an unchanged record keeps its snapshot, a changed one is decoded. So it goes
          while a record the last read skipped is still there: it is decoded, and counted, again each read.

        Finding unchanged records by their bytes instead would not depend on the order, but hashing 10,000
        records of ~700 bytes cost 7 ms, paid again on every read of a busy cluster.
        """
        # The client never decodes responses, so every record here is bytes.
        records = cast(list[bytes], self.client.hvals(self._k_latest))
        before, kept = self._decoded
        clean = None not in kept  # the last read skipped nothing
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
        return [snap for snap in snaps if snap is not None]

    def history(
        self, since: float, until: float | None = None, nodes: Collection[str] | None = None
    ) -> list[NodeSnapshot]:
        if nodes is None:
            members = cast(list[bytes], self.client.zrange(self._k_seen, 0, -1))
            names = [n.decode("utf-8", "replace") for n in members]
        else:
            names = list(nodes)
        if not names:
            return []
        pipe = self.client.pipeline(transaction=False)
        high = "+inf" if until is None else repr(float(until))
        for name in names:
            pipe.zrangebyscore(self.hist_key(name), repr(float(since)), high)
        out: list[NodeSnapshot] = []
        for records in pipe.execute():
            out.extend(snap for snap in self._decode_all(records) if snap is not None)
        return out

    def departed(self) -> Mapping[str, float]:
        return self._departures(cast(dict[bytes, bytes], self.client.hgetall(self._k_departed)).items())

    def liveness(self) -> Liveness:
        """One script call: the registry's times, the intervals and the departures; no snapshot is decoded.

        A watchdog over 10,000 nodes reads a few hundred kilobytes of numbers instead of every record.
        """
        return self.parse_liveness(self._liveness_script(keys=self.liveness_keys))

    def parse_liveness(self, reply: list[list[bytes]]) -> Liveness:
        """Decode the reply of the three reads :attr:`liveness_keys` name (ZRANGE WITHSCORES, HGETALL, HGETALL).

        A node in the registry without an interval entry (last written by an older clusternb, whose records
        carry the interval but which kept no ``intervals`` hash) gets it from its record, one HMGET for all
        such nodes, so a node that went silent before an upgrade is still watched.
        """
        seen, intervals, departed = reply
        every = dict(zip(intervals[::2], intervals[1::2], strict=True))
        every.update(self._intervals_from_records([f for f in seen[::2] if f not in every]))
        beats: dict[str, tuple[float, float]] = {}
        for field, score in zip(seen[::2], seen[1::2], strict=True):
            raw_interval = every.get(field)
            try:
                when, interval = float(score), float(raw_interval) if raw_interval is not None else math.nan
                name = field.decode()
            except (ValueError, UnicodeDecodeError):
                self._skip("registry entry is not a node, a time and an interval")
                continue
            if math.isfinite(when) and math.isfinite(interval) and interval > 0:
                beats[name] = (when, interval)
            else:
                self._skip("registry entry has no valid interval")
        return Liveness(beats, self._departures(zip(departed[::2], departed[1::2], strict=True)))

    def _intervals_from_records(self, fields: list[bytes]) -> dict[bytes, bytes]:
        if not fields:
            return {}
        out: dict[bytes, bytes] = {}
        records = cast(list[bytes | None], self.client.hmget(self._k_latest, fields))
        for field, record in zip(fields, records, strict=True):
            snap = self._decode(record) if record is not None else None
            if snap is not None:
                out[field] = repr(snap.interval_s).encode()
        return out

    def generation(self) -> int:
        raw = self.client.get(self._k_gen)
        if raw is None:
            return 0
        try:
            return int(raw)
        except ValueError:
            self._skip("generation counter is not an integer")
            return 0

    # -- diagnostics and lifecycle --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What this store did, for ``cache_status``-style diagnostics. Local counters only: no round trip."""
        with self._lock:
            reasons = dict(self._skip_reasons)
        return {
            "backend": "redis",
            "url": self.url,
            "prefix": self.prefix,
            "puts": self.puts,
            "skipped": self.skipped,
            "skipped_by_reason": reasons,
            "last_skip": self.last_skip,
        }

    def close(self) -> None:
        self._put_script.close()
        self.client.close()

    # -- decoding -------------------------------------------------------------------------------------------

    def _departures(self, pairs: Iterable[tuple[bytes, bytes]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for node, when in pairs:
            try:
                value = float(when)
                name = node.decode()
            except (ValueError, UnicodeDecodeError):
                self._skip("departure record is not a node and a time")
                continue
            if math.isfinite(value):
                out[name] = value
            else:
                self._skip("departure time is not finite")
        return out

    def _decode_all(self, records: list[bytes]) -> list[NodeSnapshot | None]:
        """Each record's snapshot, None for those skipped: all in one C-level pass when every one is good."""
        try:
            return cast(list[NodeSnapshot | None], decode_snapshots_json(records))
        except SchemaError:
            return [self._decode(record) for record in records]  # find and count the bad ones

    def _decode(self, record: bytes) -> NodeSnapshot | None:
        try:
            return decode_snapshot_json(record)  # every good record: one pass in C
        except SchemaError:
            pass
        # Not a record of this version: find out why, to count it. orjson rejects anything that is not JSON
        # (a pickle included) before any of it is interpreted.
        try:
            data = orjson.loads(record)
        except orjson.JSONDecodeError:
            self._skip("not JSON")
            return None
        if not isinstance(data, dict):
            self._skip("not a snapshot")
            return None
        if data.get("schema") != SCHEMA_VERSION:
            self._skip("other schema version")
            return None
        try:
            return NodeSnapshot.from_dict(data)
        except (SchemaError, TypeError, ValueError):
            self._skip("invalid snapshot")
            return None

    def _skip(self, reason: str) -> None:
        with self._lock:
            self.skipped += 1
            self._skip_reasons[reason] = self._skip_reasons.get(reason, 0) + 1
            self.last_skip = reason


def _gen_seed() -> int:
    # Microseconds since the epoch: far above any count a previous Redis life reached, below 2**53.
    return int(time.time() * 1_000_000)
