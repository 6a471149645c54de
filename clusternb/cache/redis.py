"""Redis cache backend: entries and leases through the process's one :class:`~clusternb.redisio.link.RedisLink`.

The link owns the client (standalone or cluster), the error translation, the health state and the backoff:
while Redis is down every call here raises :class:`~clusternb.redisio.errors.Unavailable` at once (the cache's
``BackendUnavailable``), so the fallback to memory costs one timeout per backoff step, not one per call.
Cache keys carry no hash tag: each entry is one key, so on a cluster they spread over every shard. URLs may
carry a password and a database number, and use ``rediss://`` (TLS) or ``unix://``; the password never
appears in an error or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from clusternb.cache.base import Backend, Leases
from clusternb.cache.codec import DecodeError, Entry, entry_from_bytes, kept_entry_from_bytes
from clusternb.cache.near import NearCache
from clusternb.redisio.errors import Refused
from clusternb.redisio.link import LinkOptions, RedisLink
from clusternb.redisio.scripts import LinkScript

# Delete the lease only if it is still ours (it may have expired and been taken by another process).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisBackend(Backend):
    """Entries as ``SET key <encoded entry> PX ttl``; leases as ``SET lease:key token NX PX``.

    ``link``: the process's :class:`RedisLink`, or a URL to build one from (``socket_timeout`` and
    ``connect_timeout`` then apply). ``near``: decoded copies of entries kept in this process while Redis says
    they are unchanged (:mod:`clusternb.cache.near`); None reads Redis at every lookup.
    """

    name = "redis"

    def __init__(
        self,
        link: RedisLink | str,
        socket_timeout: float = 0.25,
        connect_timeout: float = 0.5,
        near: NearCache | None = None,
    ) -> None:
        self._owns_link = isinstance(link, str)
        if isinstance(link, str):
            link = RedisLink(link, LinkOptions(socket_timeout=socket_timeout, connect_timeout=connect_timeout))
        self.link = link
        self.url = link.url
        self.safe_url = link.safe_url
        self._release = LinkScript(link, _RELEASE)
        self.near = near
        self._aoptions: dict[str, Any] = {
            "socket_timeout": link.options.socket_timeout,
            "socket_connect_timeout": link.options.connect_timeout,
            "client_name": "clusternb-cache",
        }
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnection | _LoopCluster] = (
            weakref.WeakKeyDictionary()
        )

    # -- sync -----------------------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        near = self.near
        if near is not None:
            entry = near.get(key)
            if entry is not None:
                return entry
            token = near.begin(key)
            if token is not None:
                return self._get_for_near(near, key, token)
        try:
            raw = self.link.call(lambda c: c.get(key))
        except Refused as exc:  # e.g. WRONGTYPE: another program's key under our name
            raise DecodeError(f"redis refused the read: {exc.reason}") from None
        return None if raw is None else entry_from_bytes(raw)

    def _get_for_near(self, near: NearCache, key: str, token: object) -> Entry | None:
        """GET and PTTL in one round trip; the decoded entry is kept near for the key's remaining TTL."""
        with _filling(near, key, token):
            raw, pttl = self.link.call(lambda c: c.pipeline(transaction=False).get(key).pttl(key).execute())
            entry = None if raw is None else kept_entry_from_bytes(raw)
        near.fill(key, token, entry, pttl)
        return entry

    def set(self, key: str, entry: Entry, ttl: float) -> None:
        with self._changing(key):
            self.link.call(lambda c: c.set(key, entry.to_bytes(), px=max(int(ttl * 1000), 1)))

    def delete(self, key: str) -> bool:
        with self._changing(key):
            return bool(self.link.call(lambda c: c.delete(key)))

    @contextlib.contextmanager
    def _changing(self, key: str) -> Iterator[None]:
        """This process writes ``key``: no near copy of it before the write, nor kept by a read of another
        thread that overlapped the write (the copy Redis' invalidation would drop a moment later)."""
        near = self.near
        if near is not None:
            near.drop(key)
        try:
            yield
        finally:
            if near is not None:
                near.drop(key)

    def clear(self, prefix: str) -> int:
        if self.near is not None:
            self.near.flush()  # Redis invalidates each key it deletes too; this is at once

        def run(client: Any) -> int:
            deleted = 0
            batch: list[bytes] = []
            for key in client.scan_iter(match=_glob(prefix), count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += int(client.unlink(*batch))
                    batch.clear()
            if batch:
                deleted += int(client.unlink(*batch))
            return deleted

        try:
            return int(self.link.call(run))
        finally:
            if self.near is not None:
                self.near.flush()  # and after: reads that overlapped the deletes may have kept what went

    def usage(self, prefix: str, limit: int = 10_000) -> tuple[int, int]:
        """(entries, bytes) under ``prefix``; scans at most ``limit`` keys so a status call stays cheap."""

        def run(client: Any) -> tuple[int, int]:
            keys = []
            for key in client.scan_iter(match=_glob(prefix), count=1000):
                keys.append(key)
                if len(keys) >= limit:
                    break
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.strlen(key)
            sizes = pipe.execute(raise_on_error=False) if keys else []
            return len(keys), int(sum(n for n in sizes if isinstance(n, int)))

        entries, size = self.link.call(run)
        return int(entries), int(size)

    # -- single-flight leases across processes ----------------------------------------------------------------

    @property
    def leases(self) -> Leases:
        return self

    def acquire_lease(self, key: str, ttl: float) -> str | None:
        token = uuid.uuid4().hex
        ok = self.link.call(lambda c: c.set(f"{key}:lease", token, nx=True, px=max(int(ttl * 1000), 1)))
        return token if ok else None

    def release_lease(self, key: str, token: str) -> None:
        self._release((f"{key}:lease",), (token,))

    # -- async ----------------------------------------------------------------------------------------------

    def _aconn(self) -> _LoopConnection | _LoopCluster:
        loop = asyncio.get_running_loop()
        conn = self._async.get(loop)
        if conn is None:  # redis.asyncio connections belong to one event loop
            if self.link.cluster:  # keys live on every shard: redis.asyncio's cluster client routes them
                conn = _LoopCluster(redis.asyncio.RedisCluster.from_url(self.url, **self._aoptions))
            else:
                conn = _LoopConnection(redis.asyncio.ConnectionPool.from_url(self.url, **self._aoptions))
            self._async[loop] = conn
        return conn

    async def _detected(self) -> None:
        """Know whether this is a cluster before the first async call (the link detects it on a sync call)."""
        if self.link.cluster is None:
            await asyncio.to_thread(self.link.call, _connected)

    async def aget(self, key: str) -> Entry | None:
        near = self.near
        if near is not None:
            entry = near.get(key)
            if entry is not None:
                return entry
        await self._detected()
        token = None if near is None else near.begin(key)
        if near is not None and token is not None:
            return await self._aget_for_near(near, key, token)
        try:
            raw = await self.link.acall(lambda: self._aconn().call("GET", key))
        except Refused as exc:
            raise DecodeError(f"redis refused the read: {exc.reason}") from None
        return None if raw is None else entry_from_bytes(raw)

    async def _aget_for_near(self, near: NearCache, key: str, token: object) -> Entry | None:
        """The asyncio twin of :meth:`_get_for_near` (a standalone server: the near cache is off on a cluster)."""
        with _filling(near, key, token):
            conn = self._aconn()
            assert isinstance(conn, _LoopConnection)
            raw, pttl = await self.link.acall(lambda: conn.pipeline(("GET", key), ("PTTL", key)))
            entry = None if raw is None else kept_entry_from_bytes(raw)
        near.fill(key, token, entry, pttl)
        return entry

    async def aset(self, key: str, entry: Entry, ttl: float) -> None:
        with self._changing(key):
            await self._detected()
            await self.link.acall(
                lambda: self._aconn().call("SET", key, entry.to_bytes(), "PX", max(int(ttl * 1000), 1))
            )

    async def aclose(self) -> None:
        """Close this event loop's connection (call before the loop ends, e.g. at server shutdown)."""
        conn = self._async.pop(asyncio.get_running_loop(), None)
        if conn is not None:
            await conn.aclose()

    def close(self) -> None:
        if self.near is not None:
            self.near.close()
        self._release.close()
        self._async.clear()  # their connections close with their event loops
        if self._owns_link:
            self.link.close()


class _LoopConnection:
    """One event loop's held connection for cache reads and writes, used without redis.asyncio's client layer.

    A cache hit is one GET, and the client layer around it (pool checkout, retry and timeout wrappers,
    telemetry hooks) cost as much as the round trip: on this project's CI machine a GET through a
    single-connection ``redis.asyncio.Redis`` took 142 µs and the same GET on its connection 122-129 µs, as
    fast as a bare asyncio stream. Packing, parsing (hiredis), connecting and timeouts stay redis-py's.
    (Its socket timeout wraps each send in ``asyncio.wait_for``, an extra task per call; replacing it with
    one ``asyncio.timeout`` saved those turns of the loop but measured 10-20 µs slower per hit here, as the
    process then sleeps in epoll sooner and pays a wakeup for the reply.)

    Commands of one loop take turns (an ``asyncio.Lock``), as on a single-connection client. Any failure
    or cancellation between sending and reading drops the connection: a reply left unread would otherwise
    be taken as the answer to the next command (the bug class of CVE-2023-28858 in redis-py itself).
    """

    def __init__(self, pool: redis.asyncio.ConnectionPool) -> None:
        self._pool = pool
        self._conn: Any = None
        self._closed = False
        self._lock = asyncio.Lock()

    async def call(self, *args: Any) -> Any:
        async with self._lock:
            conn = await self._checkout()
            try:
                await conn.send_command(*args)
                return await conn.read_response()
            except ResponseError:
                raise  # a complete error reply: the connection is still in step
            except BaseException:
                await self._drop(conn)
                raise

    async def pipeline(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Several commands in one round trip. Every reply is read, error replies too, before the first error
        is raised, so the connection stays in step."""
        async with self._lock:
            conn = await self._checkout()
            replies: list[Any] = []
            try:
                await conn.send_packed_command(conn.pack_commands(commands))
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
            except BaseException:
                await self._drop(conn)
                raise
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def _checkout(self) -> Any:
        """The held connection (under the lock), connected on first use."""
        if self._closed:  # a call that waited for the lock while aclose() ran: do not reopen the pool
            raise RedisConnectionError("the cache's connection for this event loop is closed")
        if self._conn is None:
            self._conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        return self._conn

    async def _drop(self, conn: Any) -> None:
        """Disconnect after a failure or cancellation between sending and reading (under the lock)."""
        self._conn = None
        try:
            await conn.disconnect()
        finally:
            await self._pool.release(conn)

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            if self._conn is not None:
                await self._pool.release(self._conn)
                self._conn = None
        await self._pool.disconnect()


class _LoopCluster:
    """One event loop's redis.asyncio cluster client, with the :class:`_LoopConnection` interface: it routes each
    key to its shard and follows failovers itself."""

    def __init__(self, client: redis.asyncio.RedisCluster) -> None:
        self._client = client

    async def call(self, *args: Any) -> Any:
        return await self._client.execute_command(*args)

    async def aclose(self) -> None:
        await self._client.aclose()


@contextlib.contextmanager
def _filling(near: NearCache, key: str, token: object) -> Iterator[None]:
    """A read that may fill the near cache: any failure forgets the fill; a refusal (another program's key of
    another type) reads as an entry that is not ours."""
    try:
        yield
    except Refused as exc:
        near.cancel(key, token)
        raise DecodeError(f"redis refused the read: {exc.reason}") from None
    except BaseException:
        near.cancel(key, token)
        raise


def _connected(client: Any) -> None:
    """Nothing: getting the client is what connects (and detects cluster mode)."""


def _glob(prefix: str) -> str:
    """A SCAN pattern matching keys that start with ``prefix`` (glob characters escaped)."""
    escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in prefix)
    return escaped + "*"
