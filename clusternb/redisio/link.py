"""The one connection to Redis of a process: client, cluster detection, health, backoff and retry, once.

Every part of clusternb that talks to Redis (query cache, state store, alert store, leases, the agent's
publish, the server's liveness watch) holds the same :class:`RedisLink` and makes its calls through
:meth:`RedisLink.call`. So a fault is seen, translated (:mod:`clusternb.redisio.errors`), counted, logged
and backed off from in one place, and every reader agrees on whether Redis is up.

Health is a small state machine per link::

    available --(a call fails: Unavailable)--> failing --(backoff elapsed: one call may try)--> recovering
        ^                                         ^                                              |
        |                                         +------------------(that call fails)-----------+
        +-----------------------------------(that call succeeds: log it, run on_recover)---------+

While failing, calls raise :class:`~clusternb.redisio.errors.Unavailable` at once without touching the network,
so a dead or paused Redis costs one timeout per backoff step instead of one per call, and every caller's
fallback answers immediately. The backoff is redis-py's ``ExponentialBackoff`` (capped), the only retry
policy of clusternb; inside one call, redis-py's own ``Retry`` makes one more attempt on a broken
connection (a pooled socket dies when Redis restarts), and none on a timeout (a hung Redis would cost twice).

Cluster mode is detected, not configured: the first connection asks the node it was given for
``INFO cluster``; with ``cluster_enabled:1`` the link builds a ``redis.cluster.RedisCluster`` from the same
URL instead, which finds every other node itself and follows failovers. Detection happens on the first call
that reaches Redis, so a link whose Redis is down at start-up still answers (from the callers' fallbacks) and
detects the mode when Redis appears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from clusternb.redisio.errors import RedisFault, Refused, Unavailable, translate
from clusternb.redisio.urls import check_url, mask_url

log = logging.getLogger("clusternb.redis")
T = TypeVar("T")


@dataclass
class Health:
    """What status lines report about one Redis (times are epoch seconds)."""

    state: str = "available"  # available | failing | recovering
    since: float | None = None  # when the current outage began (None while available)
    last_error: str | None = None
    last_failure: float | None = None
    last_recovery: float | None = None
    outages: int = 0  # times Redis went from available to failing
    failures: int = 0  # failed calls, all outages together
    ever_connected: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """How a link talks to its Redis and waits out an outage.

    ``socket_timeout``/``connect_timeout``: seconds a command, and a new connection, may take before Redis
    counts as unavailable. ``backoff_base``/``backoff_cap``: seconds before the first retry after a failure, and
    the longest wait between two tries while Redis stays down (the delay doubles each failed try). ``name``:
    the client name Redis shows (``CLIENT LIST``). ``outage_note``: what the one log line of an outage says
    happens meanwhile.
    """

    socket_timeout: float = 0.25
    connect_timeout: float = 0.5
    backoff_base: float = 0.1
    backoff_cap: float = 2.0
    name: str = "clusternb"
    outage_note: str = "serving from memory until it answers again"

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> LinkOptions:
        """The options a :class:`~clusternb.config.ClusterNB` describes (its Redis timeouts), with ``overrides``."""
        return replace(
            cls(socket_timeout=settings.redis_socket_timeout, connect_timeout=settings.redis_connect_timeout),
            **overrides,
        )


class RedisLink:
    """One Redis (standalone or cluster) for one process. Thread-safe; the client is built on first use.

    ``options``: timeouts, backoff and names (:class:`LinkOptions`; default: its defaults). ``client``: an
    existing redis-py client to use instead of building one (it must leave ``decode_responses`` off).
    """

    def __init__(self, url: str, options: LinkOptions | None = None, *, client: Any = None) -> None:
        self.url = check_url(url)
        self.safe_url = mask_url(url)
        self.options = options = options if options is not None else LinkOptions()
        self.health = Health()
        self._backoff = ExponentialBackoff(cap=options.backoff_cap, base=options.backoff_base)
        self._next_try = 0.0  # monotonic time before which calls fail fast
        self._client: Any = client  # given: a redis-py client of the caller's (decode_responses off), used as is
        self._cluster: bool | None = None if client is None else type(client).__name__ == "RedisCluster"
        self._lock = threading.Lock()
        self._recover_hooks: list[Callable[[], None]] = []
        self._tries = 1  # tries since the outage began, for the backoff

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> RedisLink:
        """The link a :class:`~clusternb.config.ClusterNB` describes (``redis_url`` and its timeouts);
        ``overrides`` are :class:`LinkOptions` fields."""
        return cls(settings.redis_url, LinkOptions.from_settings(settings, **overrides))

    # -- the client ---------------------------------------------------------------------------------------------

    @property
    def cluster(self) -> bool | None:
        """True on a Redis Cluster, False on a standalone server, None until Redis first answered."""
        return self._cluster

    def client(self) -> Any:
        """The redis-py client (``redis.Redis`` or ``redis.cluster.RedisCluster``); detects the mode on first use.

        Raises redis-py exceptions; call it inside :meth:`call` to have them translated and counted.
        """
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.options.socket_timeout,
            "socket_connect_timeout": self.options.connect_timeout,
            "client_name": self.options.name,
            "health_check_interval": 30,
        }

    def _standalone(self) -> redis.Redis:
        # One more attempt on a broken connection (a pooled socket dies when Redis restarts), none on a timeout.
        return redis.Redis.from_url(
            self.url, retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)), **self._options()
        )

    def _connect(self) -> Any:
        plain = self._standalone()
        if urlsplit(self.url).scheme == "unix":
            self._cluster = False
            return plain
        try:
            info = plain.info("cluster")
        except redis.ResponseError as exc:
            plain.close()
            if "SELECT is not allowed in cluster mode" in str(exc):
                raise Unavailable(
                    f"redis at {self.safe_url} is a Redis Cluster, which has only database 0: "
                    "remove the database number from redis_url"
                ) from None
            info = {}  # a server without INFO cluster (a proxy, an old fork): standalone
            plain = self._standalone()
        except BaseException:
            plain.close()
            raise
        if not info.get("cluster_enabled"):
            self._cluster = False
            return plain
        plain.close()
        from redis.cluster import RedisCluster

        options = self._options()
        options.pop("health_check_interval")
        self._cluster = True
        # Few retries inside a call: during a failover the link's backoff decides, not a long retry loop.
        return RedisCluster.from_url(self.url, retry=Retry(NoBackoff(), 2), **options)

    # -- calls --------------------------------------------------------------------------------------------------

    def call(self, fn: Callable[[Any], T]) -> T:
        """``fn(client)`` with errors translated and health kept; fails fast with ``Unavailable`` while backing
        off. ``Refused`` is this call's error and leaves health alone."""
        self._gate()
        try:
            value = fn(self.client())
        except Exception as exc:
            raise self._fault(exc) from None
        self._ok()
        return value

    async def acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        """The asyncio twin of :meth:`call` for a coroutine that talks to this Redis itself."""
        self._gate()
        try:
            value = await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._fault(exc) from None
        self._ok()
        return value

    def attempt(self, fn: Callable[[Any], object]) -> None:
        """``fn(client)`` as best-effort cleanup (pruning a bad record): a fault is counted, not raised; the next
        reader that finds the record tries again."""
        with contextlib.suppress(RedisFault):
            self.call(fn)

    def on_recover(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` (in the calling thread) each time Redis answers again after an outage."""
        self._recover_hooks.append(hook)

    @property
    def available(self) -> bool:
        return self.health.state == "available"

    @property
    def state_text(self) -> str:
        """What status lines say: ``connected``, ``unreachable`` (it answered before) or ``never reached``."""
        if self.available:
            return "connected"
        return "unreachable" if self.health.ever_connected else "never reached"

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- health -------------------------------------------------------------------------------------------------

    def _gate(self) -> None:
        """Let a call through unless backing off; the first call after the backoff is the one that tries."""
        h = self.health
        if h.state == "available":
            return
        with self._lock:
            now = time.monotonic()
            if now < self._next_try:
                raise Unavailable(h.last_error or f"redis at {self.safe_url} is unavailable")
            # This caller probes; the others keep failing fast until it has an answer (or the next backoff step).
            h.state = "recovering"
            self._next_try = now + self._backoff.compute(self._tries)

    def _fault(self, exc: Exception) -> Exception:
        fault = translate(exc, self.safe_url)
        if fault is None:
            return exc  # not Redis: a bug, let it through unchanged
        if isinstance(fault, Unavailable):
            self._failed(fault)
        else:
            self._ok()  # Redis answered, if only to refuse this command: it is up
        return fault

    def _failed(self, fault: RedisFault) -> None:
        with self._lock:
            h = self.health
            h.failures += 1
            h.last_error = fault.reason
            h.last_failure = time.time()
            if h.state == "available":
                h.outages += 1
                h.since = h.last_failure
                self._tries = 1
                log.warning("clusternb: %s; %s", fault.reason, self.options.outage_note)
            else:
                self._tries += 1
            h.state = "failing"
            self._next_try = time.monotonic() + self._backoff.compute(self._tries)

    def _ok(self) -> None:
        h = self.health
        if h.state == "available":
            if not h.ever_connected:
                h.ever_connected = True
            return
        with self._lock:
            if h.state == "available":
                return
            was_down_for = time.time() - (h.since or time.time())
            h.state = "available"
            h.since = None
            h.last_recovery = time.time()
            h.ever_connected = True
            self._tries = 1
        log.warning("clusternb: redis at %s answers again after %.1f s", self.safe_url, was_down_for)
        for hook in self._recover_hooks:
            try:
                hook()
            except Exception:  # a hook must not turn a good call into a failure
                log.exception("clusternb: a redis recovery hook failed")

    def status(self) -> dict[str, Any]:
        """Plain-JSON health for status lines: mode, state, since when, why."""
        h = self.health
        return {
            "url": self.safe_url,
            "mode": None if self._cluster is None else ("cluster" if self._cluster else "standalone"),
            **h.as_dict(),
        }


__all__ = ["Health", "LinkOptions", "RedisLink", "Refused", "Unavailable", "check_url", "mask_url"]
