"""Topics (what REST and the WebSocket can ask for) and the one place queries run: a small thread pool.

A :class:`Topic` is a topic name plus the query call behind it (:class:`clusternb.params.Call`, the same
value the panel poller runs, so parameters are normalised in one place); its ``key`` names it in the encoded
cache, the broadcaster and the Prometheus collector. :class:`DataService` runs ``client.query`` and the
encoding in worker threads, never on the event loop: psutil, Redis and frame building may take milliseconds,
and the loop is shared by every notebook, terminal and kernel connection of the server.

The one exception is :meth:`DataService.ready`: when both the query cache and the state store live in this
process's memory, asking "is the current result already encoded?" is two dict lookups (``Client.peek`` and
the encoded cache), far cheaper than what it saves. Profiled under load, every request handed to the pool
cost a thread hop plus a copy of the cached frame (``query`` copies for every caller), and the pool threads
then competed with the event loop for the GIL, which is where the REST tail latency came from. With Redis
on either side the lookup is network I/O, so it stays in the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from clusternb import frames
from clusternb.arguments import ArgumentError, ArgumentTypeError, shown
from clusternb.params import Call, Kind, Param, declared
from clusternb.queries import Client
from clusternb.server.payload import ENCODED_CACHE_MAX_BYTES, BodyExtras, Encoded, EncodedCache, encode_frame

#: Topic name -> the ``Client.query`` name behind it (``cache`` reads the cache's own status instead).
QUERY_OF = {
    "status": "cluster", "workers": "workers", "metrics": "metrics", "alerts": "alerts", "kernels": "kernels",
    "cache": "",
}  # fmt: skip
TOPICS = tuple(QUERY_OF)
#: Cache-status fields whose change is worth a WebSocket push (hit counters move with every query).
_CACHE_HEALTH = ("backend", "configured", "redis_state", "fallbacks", "last_failure", "last_recovery")


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic name and its query call (None for ``cache``); equal topics share one computation and one
    encoding. ``Topic("workers")`` is the call without parameters."""

    name: str
    call: Call | None = None

    def __post_init__(self) -> None:
        if self.name not in QUERY_OF:
            raise ValueError(f"unknown topic {self.name!r}")
        query = QUERY_OF[self.name]
        if self.call is None and query:
            object.__setattr__(self, "call", Call(query))  # frozen: the default call, set once
        elif self.call is not None and self.call.name != query:
            raise ValueError(f"topic {self.name!r} runs {query or 'no query'!r}, not {self.call.name!r}")

    @property
    def params(self) -> tuple[tuple[str, Any], ...]:
        return () if self.call is None else self.call.params

    @property
    def key(self) -> str:
        return self.name + ("?" + urlencode(self.params, doseq=True) if self.params else "")

    def as_dict(self) -> dict[str, Any]:
        return {} if self.call is None else self.call.params_dict()


def params_of(topic: str) -> tuple[Param, ...]:
    """The parameters a topic accepts, as its query declares them (:mod:`clusternb.params`); others are a 400."""
    return declared(QUERY_OF[topic])


def make_topic(name: str, params: Mapping[str, Any]) -> Topic:
    """Validate the topic and parameter names and normalise their shapes; values are checked by the query.

    Each parameter is read by its declared kind: names may be given repeated or comma-separated
    (``node=a&node=b`` or ``node=a,b``); a boolean takes true/false/1/0/yes/no; a time made of digits is a
    number of seconds.
    """
    if name not in QUERY_OF:
        raise ArgumentError("topic", f"unknown topic {shown(name)}; known: {list(TOPICS)}")
    declared_params = params_of(name)
    allowed = [p.name for p in declared_params]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ArgumentError(shown(unknown[0])[1:-1], f"unknown parameter for {name}; allowed: {allowed}")
    out: dict[str, Any] = {}
    for param in declared_params:
        value = params.get(param.name)
        if value is not None:
            value = _READERS[param.kind](param, value)
        if value is not None:  # an empty list of names means "not given"
            out[param.name] = value
    query = QUERY_OF[name]
    return Topic(name, Call.of(query, **out) if query else None)


def _names(param: Param, value: Any) -> str | tuple[str, ...] | None:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ArgumentTypeError(param.name, f"expected a name or a list of names, got {shown(value)}")
    split = tuple(part.strip() for item in items for part in str(item).split(",") if part.strip())
    if param.single and len(split) == 1:
        return split[0]
    return split or None  # several names for a single one are refused by the query, with its message


def _boolean(param: Param, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ArgumentError(param.name, f"expected true or false, got {shown(value)}")


def _time_arg(param: Param, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ArgumentTypeError(param.name, f"expected a duration or a time, got {shown(value)}")
    return value  # checked by the query (arguments.parse_time), the same as from Python and the CLI


def _size(param: Param, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ArgumentTypeError(param.name, f"expected bytes or a size such as '300MB', got {shown(value)}")
    return value  # checked by the query (arguments.parse_bytes)


def _choice(param: Param, value: Any) -> str:
    if not isinstance(value, str):
        raise ArgumentTypeError(param.name, f"expected a string, got {shown(value)}")
    return value  # checked against the choices by the query


#: How REST and the WebSocket read a value of each kind of parameter (see :func:`make_topic`).
_READERS: dict[Kind, Callable[[Param, Any], Any]] = {
    Kind.TIME: _time_arg,
    Kind.NAMES: _names,
    Kind.BOOLEAN: _boolean,
    Kind.CHOICE: _choice,
    Kind.SIZE: _size,
}


def topic_from_arguments(name: str, arguments: Mapping[str, list[bytes]]) -> Topic:
    """A topic from tornado's ``request.arguments`` (every value a list of bytes)."""
    repeated = {p.name for p in params_of(name) if p.repeated} if name in QUERY_OF else set()
    params: dict[str, Any] = {}
    for key, raw in arguments.items():
        if key == "token":  # Jupyter's own auth parameter, not ours
            continue
        values = [v.decode("utf-8", "replace") for v in raw]
        params[key] = values if key in repeated else values[-1]
    return make_topic(name, params)


#: Topics whose newest unfiltered frame is remembered (for Prometheus, which reads them at scrape time).
_LATEST = frozenset({"workers", "status", "kernels"})


class DataService:
    """Runs queries and encodes their results in a thread pool; remembers the newest frames for Prometheus."""

    def __init__(
        self,
        client: Client,
        threads: int = 4,
        encoded_entries: int = 64,
        encoded_bytes: int = ENCODED_CACHE_MAX_BYTES,
    ) -> None:
        self.client = client
        self.encoded = EncodedCache(encoded_entries, encoded_bytes)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clusternb-query")
        self._latest: dict[str, pd.DataFrame] = {}
        self._lock = threading.Lock()
        self._encode_locks: dict[str, tuple[threading.Lock, int]] = {}
        self._pending: dict[str, asyncio.Future[Encoded]] = {}  # event-loop side only

    def ready(self, topic: Topic) -> Encoded | None:
        """The encoded current result if it is already at hand, found without blocking; else None.

        Only answers where peeking stays in this process's memory (``Client.peeks_in_process``: never Redis, nor
        the kernel report files of embedded mode); ``cache`` is always
        computed, since its body is the cache's live counters. ``ArgumentError`` for bad parameters, as ``get``.
        """
        call = topic.call
        if call is None or not self.client.peeks_in_process(call.name):
            return None
        start = time.perf_counter_ns()
        peeked = call.peek(self.client)
        if peeked is None:
            return None  # the pool's query counts the miss
        found = self.encoded.get(topic.key, peeked.content_hash, peeked.created)
        if found is not None:  # answered from the cache's entry: a hit like any other
            self.client.cache.served(call.name, time.perf_counter_ns() - start)
        return found

    async def get(self, topic: Topic) -> Encoded:
        """The encoded current result of ``topic``.

        ``ArgumentError`` for bad parameters (the request's fault); any other exception is the server's.
        """
        found = self.ready(topic)
        if found is not None:
            return found
        # One pool call per topic at a time: when the data changes, every request that arrives before the
        # new result is encoded waits on that one call instead of queueing its own behind it; they are all
        # answered in the same loop iteration it finishes. (The query cache is single-flight too, so a
        # separate call would only have waited for the same computation, holding a pool thread.)
        loop = asyncio.get_running_loop()
        pending = self._pending.get(topic.key)
        if pending is None or pending.get_loop() is not loop:  # (tests run one service on several loops)
            pending = asyncio.ensure_future(loop.run_in_executor(self._executor, self.compute, topic))
            self._pending[topic.key] = pending
            pending.add_done_callback(functools.partial(self._settled, topic.key))
            return await asyncio.shield(pending)  # one caller giving up must not cancel the others' answer
        # Joined another request's computation: answered by one read of the cache, counted like any other.
        start = time.perf_counter_ns()
        found = await asyncio.shield(pending)
        if topic.call is not None:
            self.client.cache.served(topic.call.name, time.perf_counter_ns() - start)
        return found

    def _settled(self, key: str, done: asyncio.Future[Encoded]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled():
            done.exception()  # retrieved: nobody may be left awaiting it, and asyncio would log it

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run any other blocking call (Prometheus exposition) on the same pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def compute(self, topic: Topic) -> Encoded:
        """Blocking: query through the client's cache, then encode once per content hash."""
        if topic.call is None:  # the cache's own status
            status = self.client.cache.status()
            stable = {k: status.get(k) for k in _CACHE_HEALTH}
            extra = {k: status.get(k) for k in ("backend", "configured", "redis_state", "redis_url")}
            extras = BodyExtras(extra, stable)
            return encode_frame("cache", frames.cache_status_frame(status), None, time.time(), extras)
        # Requests queued behind a recomputation find it encoded by the time they run: skip the frame copy
        # ``query`` makes for every caller.
        found = self.ready(topic)
        if found is not None:
            return found
        result = topic.call.run(self.client)
        if topic.name in _LATEST and not topic.call.params and isinstance(result.value, pd.DataFrame):
            with self._lock:
                self._latest[topic.name] = result.value
        found = self.encoded.get(topic.key, result.content_hash, result.created)
        if found is not None:
            return found
        # The query is single-flight, so every pool thread that asked during a recomputation gets the new
        # result at the same moment; without this lock each would encode and gzip it again, side by side.
        with self._encoding(topic.key):
            found = self.encoded.get(topic.key, result.content_hash, result.created)
            if found is None:
                found = encode_frame(topic.name, result.value, result.content_hash, result.created)
                self.encoded.put(topic.key, result.content_hash, found)
        return found

    @contextlib.contextmanager
    def _encoding(self, key: str) -> Iterator[None]:
        """Hold the encoding lock of ``key`` (one per topic key, created on demand, dropped when unused)."""
        with self._lock:
            lock, users = self._encode_locks.get(key, (threading.Lock(), 0))
            self._encode_locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._encode_locks[key]
                if users == 1:
                    del self._encode_locks[key]
                else:
                    self._encode_locks[key] = (lock, users - 1)

    def latest(self, name: str) -> pd.DataFrame | None:
        """The newest unfiltered frame of a topic of :data:`_LATEST` any request or broadcast computed (None
        before)."""
        with self._lock:
            return self._latest.get(name)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def topics_of(items: Iterable[Any]) -> list[Topic]:
    """Parse a WebSocket ``subscribe`` list: names, or objects ``{"topic": "metrics", "since": "5m", ...}``.

    The first bad item raises an ``ArgumentError`` that names it and its parameter, as the client wrote them:
    ``subscribe[2]: unknown topic ...``, ``subscribe[0].node: ...``. Parameter values are checked by
    :func:`make_topic` here and by the query itself when it runs.
    """
    example = '{"topic": "metrics", "since": "15m"}'
    out: list[Topic] = []
    for i, item in enumerate(items):
        where = f"subscribe[{i}]"
        name: Any = item
        params: dict[str, Any] = {}
        if isinstance(item, dict):
            if "topic" not in item:
                raise ArgumentError(f"{where}.topic", f"missing; name the topic, like {example}")
            name, params = item["topic"], {k: v for k, v in item.items() if k != "topic"}
            if not isinstance(name, str):
                raise ArgumentTypeError(f"{where}.topic", f"expected a topic name (a string), got {name!r:.80}")
        elif not isinstance(item, str):
            raise ArgumentTypeError(where, f"expected a topic name or an object like {example}, got {item!r:.80}")
        try:
            out.append(make_topic(name, params))
        except ArgumentError as exc:
            # Name the parameter within the message; a bad name is the item itself when it was a bare string.
            inner = "" if isinstance(item, str) and exc.argument == "topic" else f".{exc.argument}"
            raise exc.at(where + inner) from None
    return out
