"""Where alert records live: in the engine itself (embedded mode) or in Redis (cluster mode).

Redis layout (``P`` = ``clusternb:v1:alerts:``)::

    P active     HASH  alert_id ("rule:node") -> alert JSON      one record per rule and node, ever
    P history    LIST  resolved alert JSON, newest first        trimmed to ``alert_history``
    P watchdog   STRING lease (SET NX PX): which process checks liveness this interval

A record that does not decode (another schema version, garbage) is skipped and counted, never fatal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import orjson
import redis

from clusternb.alerting.engine import AlertEngine
from clusternb.alerting.records import Alert, Transition
from clusternb.model import SchemaError

PREFIX = "clusternb:v1:alerts:"


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
    """Cluster mode: every process reads the same records; each transition is one pipelined write."""

    def __init__(self, client: redis.Redis, history: int = 1000, prefix: str = PREFIX) -> None:
        self.client = client
        self.history = history
        self.active_key = prefix + "active"
        self.history_key = prefix + "history"
        self.watchdog_key = prefix + "watchdog"
        self.skipped = 0

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

    def take_watchdog(self, owner: str, seconds: float) -> bool:
        """True for exactly one caller per ``seconds`` across all processes."""
        return bool(self.client.set(self.watchdog_key, owner, nx=True, px=max(int(seconds * 1000), 1)))

    def _decode(self, raws: list[Any]) -> list[Alert]:
        out = []
        for raw in raws:
            try:
                out.append(Alert.from_dict(orjson.loads(raw)))
            except (orjson.JSONDecodeError, SchemaError, TypeError, ValueError):
                self.skipped += 1
        return out
