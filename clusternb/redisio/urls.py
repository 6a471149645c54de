"""Redis URLs: checked before any client is built, and never shown with their password.

Kept apart from the client code so that settings can check and mask a URL without importing redis-py
(31 MiB of it, loaded only by processes that talk to Redis).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from clusternb.arguments import ConfigError

SCHEMES = ("redis", "rediss", "unix")


def mask_url(url: str) -> str:
    """Hide the password of a URL so it can be logged or shown (``redis://:***@host``)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    try:
        port: int | str | None = parts.port
    except ValueError:  # a bad port: still mask the password, keep the rest as written
        port = parts.netloc.rpartition(":")[2]
    if port:
        host = f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def check_url(url: str, setting: str = "redis_url") -> str:
    """``url`` if it is a Redis URL clusternb can use; else a ``ConfigError`` naming the setting (no password)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # parsed on access: ValueError when it is not a number in 0-65535
    except ValueError as exc:
        raise ConfigError(f"{setting}: {mask_url(url)!r} is not a valid URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"{setting}: {mask_url(url)!r} is not a Redis URL; use redis://host:port, rediss:// (TLS) or unix://path"
        )
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError(f"{setting}: {mask_url(url)!r} names no socket path (unix:///path/to/redis.sock)")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"{setting}: {mask_url(url)!r} names no host (redis://host:port)")
    return url
