"""Where alert records live: in the engine itself (embedded mode) or in Redis (cluster mode).

Redis layout (``P`` = ``{clusternb:v1}:alerts:``; the hash tag is the state store's, so the watchdog's script
may read the state's liveness keys beside these on a Redis Cluster)::

    P active     HASH  alert_id ("rule:node") -> alert JSON      one record per rule and node, ever
    P history    LIST  resolved alert JSON, newest first        trimmed to ``alert_history``
    P watchdog   STRING lease (SET NX PX): which process checks liveness this interval

A record that does not decode or fails its bounds (another schema version, garbage, an absurd time) is
skipped, counted per node and reason in :class:`~clusternb.rejects.Rejections`, and deleted if it still holds
the same bytes: never fatal, never immortal.

Outages (through the process's :class:`~clusternb.redisio.link.RedisLink`): reads answer from the last view
this process read, with the transitions this process made since applied to it; writes that Redis could not
take are queued (bounded) and written, in order, by the first call that reaches Redis again. An
acknowledgement queued that way is re-checked then: it is written only onto the same alert, still active,
so a person's acknowledgement is never lost and never revives an alert that ended meanwhile.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, NamedTuple, Protocol

import orjson

from clusternb.alerting.engine import AlertEngine
from clusternb.alerting.records import Alert, Transition
from clusternb.model import SchemaError
from clusternb.redisio.errors import Refused, Unavailable
from clusternb.redisio.link import RedisLink
from clusternb.redisio.scripts import LinkScript
from clusternb.rejects import Rejections, node_of
from clusternb.state.base import Liveness
from clusternb.state.redis import RedisStateStore
from clusternb.state.redis_scripts import PRUNE_HASH_VALUES, TAG, liveness_reads_lua

log = logging.getLogger(__name__)

PREFIX = f"{TAG}:alerts:"
#: Transitions kept for writing while Redis is down; past it the oldest are dropped (and counted).
MAX_QUEUED = 1000

# Take the liveness lease and, if taken, return what the watchdog reads in the same reply: the active alert
# records and the state's liveness view (the reads of RedisStateStore.liveness, from state/redis.py).
# Otherwise return the milliseconds left on the lease, so the caller need not ask again before then; a lease
# key without an expiry (written by something else) is given one, or it would stop every watchdog for good.
# KEYS: watchdog, active[, seen, intervals, departed]. ARGV: owner, lease in ms.
_WATCHDOG = (
    """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then redis.call('DEL', KEYS[1]) end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); left = tonumber(ARGV[2]) end
  return math.max(left, 1)
end
local out = {redis.call('TYPE', KEYS[2])['ok'] == 'hash' and redis.call('HVALS', KEYS[2]) or {}}
if #KEYS == 5 then out[2] = """
    + liveness_reads_lua(3)
    + """ end
return out
"""
)

# Shorten the lease to ARGV[2] ms if ARGV[1] still holds it. KEYS: watchdog.
_SHORTEN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# Apply transitions in order, atomically. KEYS: active, history. ARGV: history length, then triples
# (kind, alert_id, record JSON). Keys of the wrong type (another program's, under our name) are replaced.
_APPLY = """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then redis.call('DEL', KEYS[1]) end
if redis.call('TYPE', KEYS[2])['ok'] ~= 'list' then redis.call('DEL', KEYS[2]) end
local keep = tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  local kind, id, record = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if kind == 'resolved' or kind == 'dropped' then
    redis.call('HDEL', KEYS[1], id)
    if kind == 'resolved' then
      redis.call('LPUSH', KEYS[2], record)
      redis.call('LTRIM', KEYS[2], 0, keep - 1)
    end
  else
    redis.call('HSET', KEYS[1], id, record)
  end
end
return 1
"""


class Watch(NamedTuple):
    """What :meth:`RedisAlertStore.take_watchdog` got: the lease and what the watchdog reads, or how long another
    process still holds the lease (``held_for`` seconds, then nothing else)."""

    held_for: float
    active: tuple[Alert, ...] = ()
    liveness: Liveness | None = None


class Watchdog(Protocol):
    """The liveness lease of records shared between processes: one process at a time checks for silent nodes."""

    def take_watchdog(self, owner: str, seconds: float) -> Watch: ...

    def shorten_watchdog(self, owner: str, seconds: float) -> bool: ...


class AlertStore(Protocol):
    """Persists the transitions an engine returns and reads the records back for queries."""

    def apply(self, transitions: Iterable[Transition]) -> None: ...

    def records(self) -> list[Alert]: ...

    def active(self) -> list[Alert]: ...

    @property
    def watchdog(self) -> Watchdog | None:
        """Where other processes write these records too (Redis), the lease that lets one of them at a time check
        liveness: act then through the stored records. None where this process's engine is the record."""


class EngineAlertStore:
    """Embedded mode: the engine's own state is the record; nothing to persist."""

    watchdog = None  # one process, one engine: nothing to share

    def __init__(self, engine: AlertEngine) -> None:
        self.engine = engine

    def apply(self, transitions: Iterable[Transition]) -> None:
        pass

    def records(self) -> list[Alert]:
        return self.engine.alerts()

    def active(self) -> list[Alert]:
        return self.engine.active()


class RedisAlertStore:
    """Cluster mode: every process reads the same records; each batch of transitions is one script call.

    ``state`` is the Redis state store the records are about: given it, the liveness watchdog reads its view
    in the same call that takes the lease (see :meth:`take_watchdog`).
    """

    def __init__(
        self,
        link: RedisLink,
        history: int = 1000,
        prefix: str = PREFIX,
        state: RedisStateStore | None = None,
        rejections: Rejections | None = None,
    ) -> None:
        self.link = link
        self.state = state
        self.history = history
        self.rejections = rejections if rejections is not None else Rejections()
        self.active_key = prefix + "active"
        self.history_key = prefix + "history"
        self.watchdog_key = prefix + "watchdog"
        self._watchdog = LinkScript(link, _WATCHDOG)
        self._shorten = LinkScript(link, _SHORTEN)
        self._apply = LinkScript(link, _APPLY)
        self._prune = LinkScript(link, PRUNE_HASH_VALUES)
        self._lock = threading.Lock()
        self._queue: deque[Transition] = deque()
        self.dropped_writes = 0
        # The last records read from Redis (active, then history), with this process's transitions since.
        self._view: tuple[list[Alert], list[Alert]] = ([], [])

    @property
    def watchdog(self) -> Watchdog:
        return self

    @property
    def skipped(self) -> int:
        return self.rejections.total

    @property
    def queued(self) -> int:
        """Transitions waiting for Redis to come back."""
        return len(self._queue)

    # -- writes ---------------------------------------------------------------------------------------------

    def apply(self, transitions: Iterable[Transition]) -> None:
        """Write transitions in order; while Redis is unavailable, queue them (never raises ``Unavailable``)."""
        batch = list(transitions)
        if not batch:
            return
        self._remember(batch)
        with self._lock:
            if self._queue:  # older writes first: keep the order
                self._enqueue(batch)
                batch = []
        try:
            self._flush()
            if batch:
                self._write(batch)
        except Unavailable:
            with self._lock:
                self._enqueue(batch)

    def _write(self, batch: Sequence[Transition]) -> None:
        args: list[Any] = [self.history]
        for t in batch:
            args += [t.kind, t.alert.alert_id, orjson.dumps(t.alert.to_dict())]
        self._apply((self.active_key, self.history_key), args)

    def _enqueue(self, batch: Sequence[Transition]) -> None:
        self._queue.extend(batch)
        while len(self._queue) > MAX_QUEUED:
            self._queue.popleft()
            self.dropped_writes += 1

    def _flush(self) -> None:
        """Write what was queued during an outage (acknowledgements re-checked); ``Unavailable`` if still down."""
        with self._lock:
            pending = list(self._queue)
        if not pending:
            return
        acks = {t.alert.alert_id: t for t in pending if t.kind == "acknowledged"}
        current = {a.alert_id: a for a in self._read_active()} if acks else {}
        batch: list[Transition] = []
        for t in pending:
            if t.kind != "acknowledged":
                batch.append(t)
                continue
            now = current.get(t.alert.alert_id)
            if now is not None and now.started_at == t.alert.started_at and not now.acknowledged:
                acked = replace(
                    now, acknowledged=True, acknowledged_by=t.alert.acknowledged_by,
                    acknowledged_at=t.alert.acknowledged_at,
                )  # fmt: skip
                batch.append(Transition(acked, "acknowledged"))
        if batch:
            self._write(batch)
        with self._lock:
            # What was written is what is left of ``pending`` at the head of the queue: an overflow meanwhile
            # dropped from the head, and new writes went to the tail. Pop by identity, never by count.
            written = {id(t) for t in pending}
            while self._queue and id(self._queue[0]) in written:
                self._queue.popleft()
        log.warning("clusternb: wrote %d alert change(s) queued while redis was unreachable", len(pending))

    # -- reads ----------------------------------------------------------------------------------------------

    def records(self) -> list[Alert]:
        """Active records, then history; from this process's last view while Redis is unavailable."""
        try:
            self._flush()
            active, ended = self.link.call(self._read_both)
        except Unavailable:
            with self._lock:
                active, ended = self._view
                return [*active, *ended]
        with self._lock:
            self._view = (active, ended)
        return [*active, *ended]

    def active(self) -> list[Alert]:
        try:
            self._flush()
            return self._read_active()
        except Unavailable:
            with self._lock:
                return list(self._view[0])

    def _read_both(self, client: Any) -> tuple[list[Alert], list[Alert]]:
        pipe = client.pipeline(transaction=False)
        pipe.hvals(self.active_key)
        pipe.lrange(self.history_key, 0, self.history - 1)
        active, ended = pipe.execute(raise_on_error=False)
        return self._decode_active(active), self._decode_history(ended)

    def _read_active(self) -> list[Alert]:
        try:
            raws = self.link.call(lambda c: c.hvals(self.active_key))
        except Refused as exc:
            raws = exc
        return self._decode_active(raws)

    # -- the liveness watchdog ------------------------------------------------------------------------------

    def take_watchdog(self, owner: str, seconds: float) -> Watch:
        """Take the liveness lease for ``seconds``, which exactly one caller across all processes gets, and read
        the active records and (with a ``state`` store) its liveness view with it: one round trip.
        ``Unavailable`` when Redis is: the caller then does not check (nothing it could see is current)."""
        state = self.state
        keys = (self.watchdog_key, self.active_key, *(state.liveness_keys if state is not None else ()))
        reply = self._watchdog(keys, (owner, _millis(seconds)))
        if isinstance(reply, int):
            return Watch(held_for=max(reply, 1) / 1000)  # held, if only for its last millisecond
        liveness = state.parse_liveness(reply[1]) if state is not None else None
        return Watch(0.0, tuple(self._decode_active(reply[0])), liveness)

    def shorten_watchdog(self, owner: str, seconds: float) -> bool:
        """End ``owner``'s lease after ``seconds`` instead (a no-op once another process holds it)."""
        return bool(self._shorten((self.watchdog_key,), (owner, _millis(seconds))))

    # -- decoding -------------------------------------------------------------------------------------------

    def _decode_active(self, raws: Any) -> list[Alert]:
        alerts, bad = self._decode(raws, "alerts")
        if bad:
            self.link.attempt(lambda c: self._prune.run_on(c, (self.active_key,), bad[:500]))
        return alerts

    def _decode_history(self, raws: Any) -> list[Alert]:
        alerts, bad = self._decode(raws, "alert history")
        if bad:
            self.link.attempt(functools.partial(_lrem_all, self.history_key, bad[:100]))
        return alerts

    def _decode(self, raws: Any, kind: str) -> tuple[list[Alert], list[bytes]]:
        if isinstance(raws, Exception):  # WRONGTYPE: a key of another program under our name
            self.rejections.add(kind, "(key)", f"key unreadable: {raws}")
            return [], []
        out, bad = [], []
        for raw in raws:
            try:
                out.append(Alert.from_dict(orjson.loads(raw)))
            except orjson.JSONDecodeError:
                self.rejections.add(kind, "(unknown)", "not JSON")
                bad.append(raw)
            except (SchemaError, TypeError, ValueError) as exc:
                self.rejections.add(kind, node_of(raw), f"invalid alert: {exc}")
                bad.append(raw)
        return out, bad

    def _remember(self, batch: Sequence[Transition]) -> None:
        """Apply this process's transitions to its view, so reads during an outage include them."""
        with self._lock:
            active = {a.alert_id: a for a in self._view[0]}
            ended = list(self._view[1])
            for t in batch:
                if t.kind in ("resolved", "dropped"):
                    active.pop(t.alert.alert_id, None)
                    if t.kind == "resolved":
                        ended.insert(0, t.alert)
                else:
                    active[t.alert.alert_id] = t.alert
            self._view = (list(active.values()), ended[: self.history])


def _lrem_all(key: str, values: list[bytes], client: Any) -> Any:
    """Remove each value from a list: one pipeline, one round trip."""
    pipe = client.pipeline(transaction=False)
    for value in values:
        pipe.lrem(key, 0, value)
    return pipe.execute()


def _millis(seconds: float) -> int:
    return max(int(seconds * 1000), 1)  # PX 0 is an error; a lease always lasts at least 1 ms
