"""The query cache: Redis with automatic memory fallback, namespaces, TTLs, decorators, statistics.

    Cache ─ namespacing, TTLs, encoding, stats, single-flight (core.py)
      └─ Backend ─ MemoryBackend (memory.py)
                 ├ RedisBackend  (redis.py), with a NearCache of decoded entries (near.py)
                 └ FallbackBackend(RedisBackend, MemoryBackend)  (fallback.py)
    Entry ─ encoding (codec.py); each caller's copy of a JSON value, made as it is reached (lazycopy.py)

Exceptions: ``BackendUnavailable`` (a backend's server is unreachable: fall back), ``DecodeError`` (bytes
that are not our entry: a miss and an error count), ``EncodeError`` (a value that cannot be cached safely).
None of them ever reaches the caller of a cached function.
"""

from __future__ import annotations

from clusternb.cache.base import Backend, BackendUnavailable
from clusternb.cache.codec import DecodeError, EncodeError, Entry
from clusternb.cache.core import Cache, key_prefix
from clusternb.cache.decorators import cached
from clusternb.cache.fallback import FallbackBackend
from clusternb.cache.memory import MemoryBackend
from clusternb.cache.near import NearCache
from clusternb.cache.redis import RedisBackend
from clusternb.config import DEFAULT_TTLS, ClusterNB
from clusternb.redisio.link import RedisLink

__all__ = [
    "Backend",
    "BackendUnavailable",
    "Cache",
    "DecodeError",
    "EncodeError",
    "Entry",
    "FallbackBackend",
    "MemoryBackend",
    "NearCache",
    "RedisBackend",
    "build_cache",
    "cached",
]


def build_cache(settings: ClusterNB, link: RedisLink | None = None) -> Cache:
    """The cache the settings describe: memory only, or Redis with memory fallback when ``redis_url`` is set.
    ``link``: the process's Redis link to share (one is made from the settings otherwise)."""
    memory = MemoryBackend(max_entries=settings.cache_max_entries)
    backend: Backend = memory
    if settings.redis_url:
        redis = RedisBackend(
            link if link is not None else settings.redis_url,
            socket_timeout=settings.redis_socket_timeout,
            connect_timeout=settings.redis_connect_timeout,
        )
        if settings.near_cache_bytes:
            redis.near = NearCache(redis.link, key_prefix(), settings.near_cache_bytes)
        backend = FallbackBackend(redis, memory)
    return Cache(backend, ttls={**DEFAULT_TTLS, **settings.cache_ttls})
