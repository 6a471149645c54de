"""Where alert records live: in the engine itself (embedded mode) or in Redis (cluster mode).

Redis layout (``P`` = ``clusternb:v1:alerts:``)::

    P active     HASH  alert_id ("rule:node") -> alert JSON      one record per rule and node, ever
    P history    LIST  resolved alert JSON, newest first        trimmed to ``alert_history``
    P watchdog   STRING lease (SET NX PX): which process checks liveness this interval

A record that does not decode (another schema version, garbage) is skipped and counted, never fatal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

import orjson
import redis

from clusternb.alerting.engine import AlertEngine
from clusternb.alerting.records import Alert, Transition
from clusternb.model import SchemaError
from clusternb.state.base import Liveness
from clusternb.state.redis import RedisStateStore, liveness_reads_lua

PREFIX = "clusternb:v1:alerts:"

# Take the liveness lease and, if taken, return what the watchdog reads in the same reply: the active alert
# records and the state's liveness view (the reads of RedisStateStore.liveness, from state/redis.py).
# Otherwise return the milliseconds left on the lease, so the caller need not ask again before then; a lease
# key without an expiry (written by something else) is given one, or it would stop every watchdog for good.
# KEYS: watchdog, active[, seen, intervals, departed]. ARGV: owner, lease in ms.
_WATCHDOG = (
    """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); left = tonumber(ARGV[2]) end
  return math.max(left, 1)
end
local out = {redis.call('HVALS', KEYS[2])}
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


class Watch(NamedTuple):
    """What :meth:`RedisAlertStore.take_watchdog` got: the lease and what the watchdog reads, or how long another
    process still holds the lease (``held_for`` seconds, then nothing else)."""

    held_for: float
    active: tuple[Alert, ...] = ()
    liveness: Liveness | None = None


class AlertStore(Protocol):
    """Persists the transitions an engine returns and reads the records back for queries."""

    def apply(self, transitions: Iterable[Transition]) -> None: ...

    def records(self) -> list[Alert]: ...


class EngineAlertStore:
    """Embedded mode: the engine's own state is the record; nothing to persist."""

    def __init__(self, engine: AlertEngine) -> None:
        self.engine = engine

    def apply(self, transitions: Iterable[Transition]) -> None:
        pass

    def records(self) -> list[Alert]:
        return self.engine.alerts()


class RedisAlertStore:
    """Cluster mode: every process reads the same records; each transition is one pipelined write.

    ``state`` is the Redis state store the records are about: given it, the liveness watchdog reads its view
    in the same call that takes the lease (see :meth:`take_watchdog`).
    """

    def __init__(
        self, client: redis.Redis, history: int = 1000, prefix: str = PREFIX, state: RedisStateStore | None = None
    ) -> None:
        self.client = client
        self.state = state
        self.history = history
        self.active_key = prefix + "active"
        self.history_key = prefix + "history"
        self.watchdog_key = prefix + "watchdog"
        self.skipped = 0
        self._watchdog = client.register_script(_WATCHDOG)
        self._shorten = client.register_script(_SHORTEN)

    def apply(self, transitions: Iterable[Transition]) -> None:
        pipe = self.client.pipeline(transaction=True)
        count = 0
        for t in transitions:
            alert = t.alert
            if t.kind in ("resolved", "dropped"):
                pipe.hdel(self.active_key, alert.alert_id)
                if t.kind == "resolved":
                    pipe.lpush(self.history_key, orjson.dumps(alert.to_dict()))
                    pipe.ltrim(self.history_key, 0, self.history - 1)
            else:
                pipe.hset(self.active_key, alert.alert_id, orjson.dumps(alert.to_dict()))
            count += 1
        if count:
            pipe.execute()

    def records(self) -> list[Alert]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hvals(self.active_key)
        pipe.lrange(self.history_key, 0, self.history - 1)
        active, ended = pipe.execute()
        return self._decode(active) + self._decode(ended)

    def active(self) -> list[Alert]:
        return self._decode(list(self.client.hvals(self.active_key)))

    def take_watchdog(self, owner: str, seconds: float) -> Watch:
        """Take the liveness lease for ``seconds``, which exactly one caller across all processes gets, and read
        the active records and (with a ``state`` store) its liveness view with it: one round trip."""
        state = self.state
        keys = (self.watchdog_key, self.active_key, *(state.liveness_keys if state is not None else ()))
        reply = self._watchdog(keys=keys, args=(owner, _millis(seconds)))
        if isinstance(reply, int):
            return Watch(held_for=max(reply, 1) / 1000)  # held, if only for its last millisecond
        liveness = state.parse_liveness(reply[1]) if state is not None else None
        return Watch(0.0, tuple(self._decode(reply[0])), liveness)

    def shorten_watchdog(self, owner: str, seconds: float) -> bool:
        """End ``owner``'s lease after ``seconds`` instead (a no-op once another process holds it)."""
        return bool(self._shorten(keys=(self.watchdog_key,), args=(owner, _millis(seconds))))

    def _decode(self, raws: list[Any]) -> list[Alert]:
        out = []
        for raw in raws:
            try:
                out.append(Alert.from_dict(orjson.loads(raw)))
            except (orjson.JSONDecodeError, SchemaError, TypeError, ValueError):
                self.skipped += 1
        return out


def _millis(seconds: float) -> int:
    return max(int(seconds * 1000), 1)  # PX 0 is an error; a lease always lasts at least 1 ms
