"""A Lua script run on one held redis-py connection: the publish path of a process that writes every interval.

Through ``redis.Redis``, every command also pays a pool checkout (a lock, a pid check and a readiness poll
of the socket), a retry wrapper and telemetry hooks. For an agent that wakes once a second to publish one
sample, those wrappers cost as much as the round trip itself: 145-160 µs of CPU per put through the client
against 83 µs on a held connection, measured on the same script on this project's CI machine, and more
when the process wakes with cold caches. The protocol work (packing, hiredis parsing, reconnecting, the
health check) stays redis-py's: this class only holds the connection and reproduces the two behaviours
of ``Script`` and ``Retry`` the store relies on (load the script again after a Redis restart, retry once
on a broken connection), plus the pool's fork check.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from redis.exceptions import NoScriptError

_BROKEN = (redis.ConnectionError, redis.TimeoutError, OSError)


class HeldScript:
    """Calls one script with ``EVALSHA`` on a connection checked out of ``client``'s pool once and kept.

    Thread-safe (calls take turns on the one connection). Connects lazily, so building it never touches
    Redis. Raises ``redis`` exceptions like the client would. A broken connection (Redis restarted) is
    dropped and the call made once more on a new one; a timeout drops the connection (a late reply must not
    be read as the answer to the next call) and fails at once: Redis is slow or hung, and the caller's
    backoff decides when to try again.
    """

    def __init__(self, client: redis.Redis, text: str) -> None:
        self._pool = client.connection_pool
        self._script = client.register_script(text)  # computes the SHA; loads the text when Redis lacks it
        self._conn: Any = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def __call__(self, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        with self._lock:
            if self._pid != os.getpid():  # a forked child must not write on its parent's socket
                self._conn, self._pid = None, os.getpid()
            for attempt in (1, 2):
                try:
                    return self._call_loading(keys, args)
                except _BROKEN as exc:
                    self._drop()
                    if attempt == 2 or not isinstance(exc, redis.ConnectionError):  # a timeout: fail at once
                        raise
            raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Give the connection back to the pool (the pool's owner disconnects it)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._pool.release(self._conn)
            self._conn = None

    def _call_loading(self, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        try:
            return self._call(keys, args)
        except NoScriptError:  # Redis restarted (or SCRIPT FLUSH): load the text, then ask again
            self._script.registered_client.script_load(self._script.script)
            return self._call(keys, args)

    def _call(self, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        if self._conn is None:
            self._conn = self._pool.get_connection()  # connects, or raises ConnectionError and keeps nothing
        conn = self._conn
        conn.send_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
        return conn.read_response()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
            self._pool.release(self._conn)
            self._conn = None
