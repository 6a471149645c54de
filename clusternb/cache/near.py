"""The near cache: decoded copies of Redis cache entries in this process, dropped the moment any process
changes them (Redis 6+ server-assisted client-side caching, ``CLIENT TRACKING``).

Why: a Redis-mode hit otherwise pays a round trip, a transfer and a decode at every call (a 10,000-node
``workers()`` frame: ~1.8 MB and ~8 ms, for every kernel's panel at every tick). With a near copy, a hit
costs what a memory hit costs, and Redis is still the one shared truth.

How it stays true::

    tracker thread: its own RESP3 connection, CLIENT TRACKING ON BCAST PREFIX <the cache's key prefix>
        Redis pushes ["invalidate", [key, ...]] for every write, delete or expiry of a key under the prefix,
        by any process (this one included), and ["invalidate", nil] for FLUSHDB/FLUSHALL
        -> those keys (or every key) leave the near cache
    a miss: GET and PTTL in one round trip on the cache's own connection; the decoded entry is kept for
        the key's remaining TTL, unless an invalidation of that key (or a flush) arrived meanwhile

The near cache answers only while the tracker is connected with tracking on *and* the process's Redis link is
available. The tracker checks its connection with a PING after each second of silence: a lost connection,
a paused or killed Redis, or a PING without answer flushes every near copy at once, and a reconnect
starts empty (invalidations sent while it was away are lost, so nothing kept from before can be trusted).
A reader also polls the tracking socket before it answers from a copy (about a microsecond): bytes waiting
there may be an invalidation the tracker thread has not read yet (it may wait a whole GIL switch interval,
5 ms, behind a busy thread), so that read goes to Redis instead. The window left is the one every
client-side cache has: after a write, another process may answer from its old copy until the invalidation
has crossed the network (measured in ``benchmarks/bench_near_cache.py``), and for at most ``ping_interval``
plus the socket timeout if a network partition silently swallows the invalidations.

Tracking knows keys, not database numbers: a ``FLUSHDB`` of another database, or a write under the same prefix
in another database, drops copies here too (a refetch, nothing worse); ``SWAPDB`` sends no invalidation at
all, so a deployment that swaps databases under running clients must turn the near cache off
(``near_cache_bytes = 0``).

Where it does not apply: a Redis Cluster (tracking is per shard; every read goes to its shard as before), a
Redis that refuses ``CLIENT TRACKING`` (before 6.0, some proxies, an ACL without ``client``): the cache
then works as without it, and :meth:`NearCache.state` says why.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections import OrderedDict
from typing import Any, Final

import redis
from redis._parsers import _RESP3Parser

from clusternb.cache.codec import Entry
from clusternb.redisio.link import RedisLink

log = logging.getLogger("clusternb.cache")

#: Seconds of silence on the tracking connection after which the tracker checks it with a PING.
PING_INTERVAL: Final = 1.0
#: Seconds between two attempts to reconnect the tracker (Redis down, or refusing tracking for now).
RECONNECT_DELAY: Final = 1.0
#: Seconds the tracker waits for its PING's answer before it stops vouching for every copy (a Redis busy for a
#: moment answers late, not never; a paused or unreachable one does not answer).
PING_TIMEOUT: Final = 1.0


class _Fill:
    """A read from Redis under way (identity matters); ``started``: when it began (monotonic)."""

    __slots__ = ("started",)

    def __init__(self, started: float) -> None:
        self.started = started


class NearCache:
    """Decoded entries of one Redis cache, kept while Redis says they are unchanged. Thread-safe.

    ``link``: the process's Redis link (its URL, timeouts and health). ``prefix``: the cache's key prefix, the
    only keys tracked and kept. ``max_bytes``: bound on the encoded size of the entries kept (least recently
    used go first); 0 turns the near cache off.
    """

    def __init__(self, link: RedisLink, prefix: str, max_bytes: int, ping_interval: float = PING_INTERVAL) -> None:
        self.link = link
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.ping_interval = ping_interval
        self._entries: OrderedDict[str, tuple[float, Entry]] = OrderedDict()
        self._bytes = 0
        self._pending: dict[str, object] = {}  # key -> token of a fill in progress; an invalidation drops it
        self._lock = threading.Lock()
        self._live = False  # tracker connected, tracking on, started empty
        self._fd: int | None = None  # the tracking socket's descriptor while live, polled by readers (_unread)
        self._generation = 0  # of tracking connections: a reader's poll object belongs to one of them
        self._readers = threading.local()  # each reader thread's poll object (one may not be polled by two)
        self._reading = False  # the tracker is reading what arrived (some may still sit in its parser)
        self._broken = False  # an invalidation could not be applied: the tracker must start again
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._state = "off" if max_bytes <= 0 else "starting"
        self.invalidations = 0  # keys Redis said changed
        self.flushes = 0  # times every near copy was dropped (lost connection, FLUSHALL, reconnect)

    # -- the fast path ------------------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The near copy of ``key``, or None (not kept, expired, or the near cache cannot vouch for it now)."""
        if not self._live or not self.link.available:
            return None
        # Before the lookup, not after: an entry looked up first could be invalidated and the socket emptied
        # between the lookup and the check, and then be served although its invalidation was already read.
        if self._reading or self._unread():
            return None  # an invalidation may be waiting for the tracker thread: ask Redis this once
        item = self._entries.get(key)  # dict reads are atomic under the GIL
        if item is None:
            return None
        expires, entry = item
        if expires < time.monotonic():
            self._discard(key, item)
            return None
        with contextlib.suppress(KeyError):  # invalidated since the lookup: it was true when read
            self._entries.move_to_end(key)
        return entry

    # -- filling ------------------------------------------------------------------------------------------------

    def begin(self, key: str) -> object | None:
        """Before reading ``key`` from Redis: a token for :meth:`fill`, or None when the copy must not be kept.

        The token dies with any invalidation of ``key`` or flush that arrives before :meth:`fill`: the value
        read may then be older than Redis' own.
        """
        if self._state == "off" or self._stop.is_set() or not key.startswith(self.prefix):
            return None
        if self._thread is None:
            self._start()
        if not self._live:
            return None
        token = _Fill(time.monotonic())
        with self._lock:
            self._pending[key] = token
        return token

    def fill(self, key: str, token: object | None, entry: Entry | None, ttl_ms: Any) -> None:
        """Keep ``entry`` (read with ``token``) for ``ttl_ms`` milliseconds (the key's PTTL), if still true."""
        if not isinstance(token, _Fill):
            return
        with self._lock:
            if self._pending.get(key) is not token:
                return  # invalidated (or flushed) while the read was under way
            del self._pending[key]
            if entry is None or not self._live or not isinstance(ttl_ms, int) or ttl_ms <= 0:
                return  # gone, or a key without expiry (not one of ours): nothing to keep
            if entry.size > self.max_bytes // 4:
                return  # one entry may not push out the rest
            self._remove(key)
            # From when the read began: the PTTL was counted down while the reply travelled and decoded.
            self._entries[key] = (token.started + ttl_ms / 1000, entry)
            self._bytes += entry.size
            while self._bytes > self.max_bytes:
                _, (_, old) = self._entries.popitem(last=False)
                self._bytes -= old.size

    def cancel(self, key: str, token: object | None) -> None:
        """A read begun with ``token`` failed: forget it."""
        if token is not None:
            with self._lock:
                if self._pending.get(key) is token:
                    del self._pending[key]

    def drop(self, key: str) -> None:
        """This process changes ``key``: its near copy goes, before the write and again after it (a read of
        another thread that began before the write may have kept the old value meanwhile); Redis'
        invalidation follows."""
        with self._lock:
            self._pending.pop(key, None)
            self._remove(key)

    def flush(self) -> None:
        """Drop every near copy and every fill under way."""
        with self._lock:
            self._entries.clear()
            self._pending.clear()
            self._bytes = 0
            self.flushes += 1

    # -- what status lines show ---------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``on``, ``off`` (configured off), ``starting``, ``reconnecting``, ``cluster`` (not used on a Redis
        Cluster) or ``refused: <why>`` (this Redis does not track)."""
        return self._state

    def usage(self) -> tuple[int, int]:
        """(entries, encoded bytes) kept now."""
        return len(self._entries), self._bytes

    def close(self) -> None:
        """Stop answering now; the tracker thread ends (and disconnects) within ``ping_interval``. Not joined:
        closing a client should not wait out a second of silence on the tracking connection."""
        self._stop.set()
        self._live = False
        self._state = "closed"
        self.flush()

    # -- internals ----------------------------------------------------------------------------------------------

    def _remove(self, key: str) -> None:
        item = self._entries.pop(key, None)
        if item is not None:
            self._bytes -= item[1].size

    def _discard(self, key: str, item: tuple[float, Entry]) -> None:
        with self._lock:
            if self._entries.get(key) is item:
                self._remove(key)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            if self.link.cluster is None:
                return  # not known until Redis first answered: the next miss asks again
            if self.link.cluster:
                self._state = "cluster"
                return
            self._thread = threading.Thread(target=self._track, name="clusternb-near-cache", daemon=True)
        self._thread.start()

    def _track(self) -> None:
        """The tracker thread: connect, track, listen; on any loss flush, wait, and start again. Whatever ends a
        connection (a bug included) first stops the near cache from answering: a dead tracker must never leave
        copies served with nobody listening for their invalidations."""
        while not self._stop.is_set():
            conn = None
            try:
                conn = self._connect()
                self._listen(conn)
            except redis.ResponseError as exc:  # CLIENT TRACKING refused: this server or user cannot track
                self._lost(f"refused: {exc}")
                log.warning("clusternb: redis refused CLIENT TRACKING (%s); no near cache in this process", exc)
                return
            except (redis.RedisError, OSError) as exc:
                self._lost("reconnecting")
                log.info("clusternb: near cache off until its tracking connection is back (%s)", type(exc).__name__)
            except Exception:
                self._lost("reconnecting")
                log.exception("clusternb: the near cache's tracker failed; it starts again empty")
            finally:
                if self._live:  # ended by something not caught above (the thread's own end included)
                    self._lost("reconnecting")
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.disconnect()
            self._stop.wait(RECONNECT_DELAY)
        self._lost("closed")

    def _connect(self) -> Any:
        options = self.link.options
        pool = redis.ConnectionPool.from_url(
            self.link.url,
            protocol=3,
            # redis-py's pure-Python RESP3 parser: it has handled push messages since redis-py 5, where the
            # hiredis parser of some versions returns them as plain replies; invalidations are little traffic.
            parser_class=_RESP3Parser,
            socket_timeout=max(options.socket_timeout, PING_TIMEOUT),
            socket_connect_timeout=options.connect_timeout,
            client_name=f"{options.name}-near-cache",
        )
        conn: Any = pool.make_connection()
        try:
            conn.connect()
            # redis-py's own client-side cache installs its handler the same way (CacheProxyConnection).
            conn._parser.set_invalidation_push_handler(self._on_invalidate)
            conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix)
            reply = conn.read_response()
            if reply not in (b"OK", "OK"):
                raise redis.ResponseError(f"unexpected reply to CLIENT TRACKING: {reply!r}")
        except BaseException:
            conn.disconnect()
            raise
        self.flush()  # invalidations sent while the tracker was away are lost: start empty
        self._broken = False
        self._live = True
        self._state = "on"
        return conn

    def _listen(self, conn: Any) -> None:
        """Wait on the socket with a poll of its own (a look that takes nothing), and read only with
        ``_reading`` set: while bytes sit in the socket or in the parser's buffer, readers ask Redis."""
        poller = select.poll()  # the tracker's own: a poll object must not be polled by two threads at once
        fd = conn._sock.fileno()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        self._generation += 1
        self._fd = fd
        while not self._stop.is_set():
            if poller.poll(self.ping_interval * 1000):
                self._read(conn, lambda: conn.read_response(push_request=True))
            else:  # a second of silence: is Redis still there? (a paused one answers nothing)
                self._read(conn, lambda: self._ping(conn, poller))
            if self._broken:
                raise ConnectionError("an invalidation could not be applied")

    def _read(self, conn: Any, first: Any) -> None:
        self._reading = True
        try:
            first()
            while conn.can_read(timeout=0):  # and whatever else already arrived
                conn.read_response(push_request=True)
        finally:
            self._reading = False

    def _ping(self, conn: Any, poller: select.poll) -> None:
        conn.send_command("PING")
        if not poller.poll(PING_TIMEOUT * 1000) and not conn.can_read(timeout=0):
            raise TimeoutError(f"no answer to PING within {PING_TIMEOUT} s")
        conn.read_response()  # invalidations read meanwhile go to the handler

    def _unread(self) -> bool:
        """Whether bytes wait on the tracking socket. A reader asks so as not to serve a copy whose
        invalidation has arrived but not yet been read: the tracker thread may wait for the GIL for a whole
        switch interval (5 ms) behind a busy thread, and a poll costs about a microsecond."""
        fd, readers = self._fd, self._readers
        if fd is None:
            return True
        if getattr(readers, "generation", None) != self._generation:
            readers.poller = select.poll()
            readers.poller.register(fd, select.POLLIN | select.POLLPRI)
            readers.generation = self._generation
        return bool(readers.poller.poll(0))

    def _on_invalidate(self, message: Any) -> None:
        try:
            keys = message[1] if isinstance(message, list | tuple) and len(message) > 1 else None
            if keys is None:  # FLUSHDB / FLUSHALL
                self.flush()
                return
            with self._lock:
                for key in keys:
                    name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
                    self._pending.pop(name, None)
                    self._remove(name)
                    self.invalidations += 1
        except Exception:  # redis-py would log and drop it: an invalidation lost must cost every copy instead
            self._live = False
            self._broken = True
            self.flush()
            raise

    def _lost(self, state: str) -> None:
        self._live = False
        self._fd = None  # before the socket closes: its descriptor may be reused by another connection
        self._state = state
        self.flush()


__all__ = ["NearCache"]
