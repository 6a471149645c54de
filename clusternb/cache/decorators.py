"""``@cached``: the decorator for sync and async functions, with the hit path kept as short as possible.

The hit path is: build the key (memoised per argument tuple), one backend get, a stats bump, and a copy
for the caller where the value is mutable (none with ``share=True``). Everything else (encoding,
single-flight, leases, fallback) happens only on a miss. ``fn.with_entry(...)`` returns ``(value, entry)``
for consumers that need the content hash (REST ETags, the WebSocket, panels).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

import orjson

from clusternb import arguments
from clusternb.arguments import TTL_MAX
from clusternb.cache.codec import DecodeError, Entry
from clusternb.cache.core import UNUSABLE, Cache
from clusternb.cache.stats import NamespaceStats

F = TypeVar("F", bound=Callable[..., Any])
CacheProvider = Callable[[], Cache]

_default_provider: CacheProvider | None = None


def set_default_cache_provider(provider: CacheProvider) -> None:
    """Where ``@cached`` without ``cache=`` finds its cache (clusternb points it at the default client)."""
    global _default_provider  # noqa: PLW0603 - one provider per process, set once at import
    _default_provider = provider


def _default_cache() -> Cache:
    if _default_provider is None:
        # clusternb.default registers the provider when it is imported, and `import clusternb` leaves it unimported
        # so that the package stays light (no pandas). A decorated function's first call imports it here; the
        # import is the registration, so this layer needs no name from it.
        import clusternb.default  # noqa: F401
    if _default_provider is None:
        raise RuntimeError("no default cache: pass cache= to @cached")
    return _default_provider()


def argument_digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A stable digest of call arguments: the same across processes for the same JSON-able arguments."""
    payload = orjson.dumps(
        [_tag(args), _tag(dict(sorted(kwargs.items())))],
        default=lambda o: f"{type(o).__module__}.{type(o).__qualname__}:{o!r}",
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


_TUPLE = "\x00tuple"


def _tag(value: Any) -> Any:
    """Keep tuples apart from lists (JSON has only arrays): ``f((1,))`` and ``f([1])`` get different keys."""
    if isinstance(value, tuple):
        return {_TUPLE: [_tag(v) for v in value]}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, dict):
        return {k: _tag(v) for k, v in value.items()}
    return value


def cached(
    namespace: str,
    ttl: float | None = None,
    cache: Cache | CacheProvider | None = None,
    token: Callable[[], object] | None = None,
    share: bool = False,
) -> Callable[[F], F]:
    """Cache a function's results in ``namespace`` for ``ttl`` seconds (default: the namespace's TTL).

    ``cache``: a :class:`Cache` or a callable returning one (default: clusternb's default client's cache).
    ``token``: a callable whose value joins the key, so a new token means a new entry; clusternb's queries
    pass the state store's generation so a cached result is never older than the newest sample. The entry of
    the previous token is deleted when the token changes (:meth:`Cache.supersede`): nothing can ask for it again.
    ``share``: hand every hit the cache's own value instead of a copy of it. By default each caller gets a value
    it may mutate (nested lists and dicts, frame columns) without changing what the next caller gets: a JSON
    value is copied level by level as the caller reaches it (see :mod:`clusternb.cache.lazycopy`), a pandas
    object shallowly where pandas copies on write (deeply on pandas 2 without copy-on-write). With
    ``share=True`` a memory hit costs no copy at all, and callers must **not mutate** what they get: a shared
    JSON value refuses changes (``TypeError``); a change to a shared frame would reach every later caller in
    this process until the entry expires. (A Redis hit decodes a value of its own either way.)
    Results must be JSON data or pandas objects; anything else is returned uncached and counted as an error.
    Bad arguments raise :class:`~clusternb.arguments.ArgumentError` here, where the function is decorated.
    """
    arguments.namespace("namespace", namespace)
    if ttl is not None:
        ttl = arguments.number("ttl", ttl, 0, TTL_MAX)
    get_cache = _provider(cache)
    if not isinstance(share, bool):
        raise arguments.ArgumentTypeError("share", f"expected True or False, got {share!r}")
    if token is not None and not callable(token):
        raise arguments.ArgumentTypeError("token", f"expected a callable, got {token!r}")

    def decorate(fn: F) -> F:
        resolve = _resolver(namespace, f"{fn.__module__}.{fn.__qualname__}", get_cache, token)

        def ttl_in(c: Cache) -> float:
            return c.ttl(namespace) if ttl is None else ttl

        if inspect.iscoroutinefunction(fn):
            return _async_cached(fn, resolve, ttl_in, share)
        return _sync_cached(fn, resolve, ttl_in, share)

    return decorate


Resolver = Callable[[tuple[Any, ...], dict[str, Any]], tuple[Cache, NamespaceStats, str]]


def _provider(cache: Cache | CacheProvider | None) -> CacheProvider:
    """The ``cache=`` argument as a callable that returns the cache to use now."""
    if cache is None:
        return _default_cache
    if isinstance(cache, Cache):
        return lambda: cache
    if not callable(cache):
        raise arguments.ArgumentTypeError("cache", f"expected a Cache or a callable returning one, got {cache!r}")
    return cache


def _resolver(namespace: str, name: str, get_cache: CacheProvider, token: Callable[[], object] | None) -> Resolver:
    """The function that maps one call's arguments to (cache, its stats for ``namespace``, key): the first step
    of every call, hit or miss, so it memoises keys and the namespace lookups."""

    @functools.lru_cache(maxsize=4096)
    def _memo_key(prefix: str, args: tuple[Any, ...], kw_items: tuple[tuple[str, Any], ...]) -> str:
        return prefix + argument_digest(args, dict(kw_items))

    # (cache, its stats for this namespace, key prefix), refreshed when the provider hands out another
    # cache (e.g. after clusternb.connect()): the hit path then skips the namespace checks and lookups.
    bound: list[Any] = [None, None, ""]

    def resolve(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Cache, NamespaceStats, str]:
        c = get_cache()
        if c is not bound[0]:
            bound[:] = [c, c.stats_for(namespace), f"{c.namespace_prefix(namespace)}{name}:"]
        prefix = bound[2]
        try:
            key = _memo_key(prefix, args, tuple(kwargs.items()) if kwargs else ())
        except TypeError:  # unhashable arguments (lists, dicts): no memo, same digest
            key = prefix + argument_digest(args, kwargs)
        if token is None:
            return c, bound[1], key
        tokened = f"{key}:{token()}"
        c.supersede(namespace, key, tokened)  # a new token: the entry of the old one can never be asked for again
        return c, bound[1], tokened

    return resolve


def _sync_cached(fn: F, resolve: Resolver, ttl_in: Callable[[Cache], float], share: bool) -> F:
    """The wrapper of a plain function, and its ``with_entry``."""

    def with_entry(*args: Any, **kwargs: Any) -> tuple[Any, Entry | None]:
        c, stats, key = resolve(args, kwargs)
        entry = c.lookup(stats, key)
        found = c.use(stats, entry, share)
        if found is not UNUSABLE:
            return found, entry
        return c.compute(stats, key, ttl_in(c), lambda: fn(*args, **kwargs), share)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        c, stats, key = resolve(args, kwargs)
        entry = c.lookup(stats, key)
        if entry is not None:
            try:
                return entry.value_for_caller(share)
            except DecodeError as exc:  # a forged payload behind a good header: a miss (inline: the hot path)
                c.count_error(stats, "decode", exc)
        return c.compute(stats, key, ttl_in(c), lambda: fn(*args, **kwargs), share)[0]

    wrapper.with_entry = with_entry  # type: ignore[attr-defined]
    return cast(F, wrapper)


def _async_cached(fn: F, resolve: Resolver, ttl_in: Callable[[Cache], float], share: bool) -> F:
    """The wrapper of a coroutine function, and its ``with_entry``."""

    async def awith_entry(*args: Any, **kwargs: Any) -> tuple[Any, Entry | None]:
        c, stats, key = resolve(args, kwargs)
        entry = await c.alookup(stats, key)
        found = c.use(stats, entry, share)
        if found is not UNUSABLE:
            return found, entry
        return await c.acompute(stats, key, ttl_in(c), lambda: fn(*args, **kwargs), share)

    @functools.wraps(fn)
    async def awrapper(*args: Any, **kwargs: Any) -> Any:
        return (await awith_entry(*args, **kwargs))[0]

    awrapper.with_entry = awith_entry  # type: ignore[attr-defined]
    return cast(F, awrapper)
