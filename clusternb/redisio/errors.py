"""clusternb's own Redis exceptions, and the one translation of redis-py's into them.

What a caller must decide after a failed Redis call is only this: *fall back* (the server cannot answer now,
answer from memory and try again later) or *this call was wrong* (Redis answered and refused it: a key of
another type under our name, a full server refusing writes, a script error). redis-py spreads those two
answers over some thirty classes, two of which (``RedisClusterException`` and its children) do not even derive
from ``redis.RedisError``, and a wrong password is a ``ConnectionError`` while a replica refusing a write
during a failover is a ``ResponseError``. :func:`translate` maps them once::

    RedisFault                       any failure of a Redis call, as clusternb sees it
     ├── Unavailable                 unreachable, timed out, refused our password, loading, cluster down or
     │                               failing over: fall back to memory, retry after the backoff
     └── Refused                     Redis answered "no" to this one command: count it, do not fall back

Messages never carry the URL's password: they name the masked URL (``redis://:***@host``) and the exception
class and text from redis-py, which never includes the password either.
"""

from __future__ import annotations

import redis
from redis import exceptions as rex


class RedisFault(Exception):
    """A Redis call failed. ``reason`` is a short, password-free text for logs and status lines."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(RedisFault, ConnectionError):
    """Redis cannot answer now (down, paused, unreachable, wrong password, cluster failing over): fall back."""


class Refused(RedisFault):
    """Redis answered and refused this command (WRONGTYPE, OOM, a script error): the call's own error."""


#: Answers that mean "not now" although redis-py reports them as a command's error reply.
_NOT_NOW = (
    rex.ReadOnlyError,  # a replica that was a master until a failover
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.MasterDownError,
    rex.BusyLoadingError,
)


def translate(exc: BaseException, where: str) -> RedisFault | None:
    """The clusternb exception for a redis-py (or socket) exception raised talking to ``where`` (a masked URL);
    None for anything else, which is a bug to let through."""
    if isinstance(exc, RedisFault):
        return exc
    name = type(exc).__name__
    if isinstance(exc, rex.AuthenticationError | rex.AuthenticationWrongNumberOfArgsError):
        return Unavailable(f"redis at {where} refused the password ({name})")
    if isinstance(exc, rex.NoPermissionError | rex.AuthorizationError):
        return Unavailable(f"redis at {where} refused access: {exc} ({name})")
    if isinstance(exc, _NOT_NOW):
        return Unavailable(f"redis at {where} cannot serve now: {exc} ({name})")
    if isinstance(exc, rex.RedisClusterException) and "slot" in str(exc) and "same" in str(exc):
        return Refused(f"redis at {where} refused a command over several slots: {exc} ({name})")  # a bug of ours
    if isinstance(exc, rex.ResponseError | rex.DataError):
        return Refused(f"redis at {where} refused the command: {exc} ({name})")
    if isinstance(exc, redis.RedisError | rex.RedisClusterException | OSError):
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        return Unavailable(f"redis at {where} is unreachable: {name}{': ' + detail if detail else ''}")
    return None
