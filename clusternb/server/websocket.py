"""The change-only WebSocket at ``{base_url}clusternb/api/ws``: its protocol, its limits and its errors.

Protocol: text frames, each one JSON object; a client message is answered before the next one is read::

    -> {"subscribe": ["status", "workers", "alerts", "cache", {"topic": "metrics", "since": "10m"}]}
    <- {"type": "subscribed", "topics": ["status", "workers", "alerts", "cache", "metrics?since=10m"]}
    <- {"type": "state", "key": "workers", "initial": true, ...}       one per topic, at once, then one
    <- {"type": "state", "key": "workers", "initial": false, ...}      each time that topic's data changes
    -> {"unsubscribe": ["alerts"]}                                     topic keys, as "subscribed" listed them
    <- {"type": "unsubscribed", "topics": ["alerts"]}
    -> {"fresh": false}                                                no "fresh" confirmations (default true)
    <- {"type": "options", "fresh": false}
    <- {"type": "error", "message": "subscribe[4].since: could not understand 'banana'; ..."}

Topics and their parameters are the REST endpoints' (``metrics``: ``since``, ``until``, ``node``, ``fields``;
``alerts``: ``active``, ``severity``, ``since``, ``node``; lists as JSON lists or comma-separated strings).
A message may carry several keys; ``fresh`` is applied first, then ``unsubscribe``, then ``subscribe``. The
``state`` and ``fresh`` frames are the broadcaster's (:mod:`clusternb.server.broadcaster`). ``"fresh": false``
turns off this connection's ``fresh`` frames (the small "still current" confirmations of unchanged topics), so
unchanged data costs it nothing at all; a client that knows its socket is live (JupyterLab's status bar) can
say "current" without them. ``"options"`` answers a message that only set ``fresh``.

A message is validated whole before anything is done: its shape, every topic and its parameters (the queries
check their own values when they compute the initial states), every key to unsubscribe (it must be subscribed)
and the limits below. Until all of that holds nothing is subscribed or unsubscribed and nothing is
acknowledged; the client gets ONE error frame whose message starts with what was wrong, as the client wrote it
(``message``, ``subscribe``, ``subscribe[0].node``, ``unsubscribe[1]``), and the connection stays open.
A fault on the server's side while serving a message (anything but a
:class:`~clusternb.arguments.ArgumentError`) is logged once, with its traceback, and answered with an error
frame that says so and shows no internals. A topic whose first state failed that way is subscribed all the
same (after ``subscribed``, an error frame lists it under ``"topics"``): its state follows with the first tick
that computes it, so a transient fault never leaves a page waiting for good.

Limits, so one connection's work is bounded (a client can never stall another):

- :data:`MESSAGE_MAX_BYTES` per message: an error frame past it. Tornado refuses to buffer frames over
  :data:`FRAME_MAX_BYTES` at all: it closes the connection with code 1009 (message too big) after reading
  the frame header, so a client cannot make the server hold megabytes; between the two limits the client
  still gets a readable error and keeps its connection.
- :data:`TOPICS_MAX` topics subscribed per connection (and so per message), and :data:`USER_TOPICS_MAX`
  distinct topics per user over all their connections (tabs sharing topics count them once).
- The REST rate limit (``c.ClusterNBApp.rate_limit`` / ``rate_burst``), same bucket per user: a message costs
  one token for each topic it subscribes (each is a query, like a REST GET), at least one. Past it the message
  is not processed and the error frame carries ``"retry_after"`` (seconds) and says when to retry.

Authentication and origin checks are jupyter_server's own: ``@ws_authenticated`` answers 403 to unknown users,
and ``WebSocketMixin.check_origin`` refuses cookie-authenticated connections from a foreign Origin (token
connections skip it, as everywhere in Jupyter). ``WebSocketMixin`` also pings every ``ws_ping_interval`` and
closes peers that stop answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

import orjson
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from clusternb.arguments import ArgumentError, ArgumentTypeError
from clusternb.server.broadcaster import Fanout, Mailbox
from clusternb.server.payload import Encoded
from clusternb.server.ratelimit import user_key
from clusternb.server.routes import AppHandler, Route
from clusternb.server.service import Topic, topics_of

#: The largest client message served. The dashboard's subscription is ~150 bytes; 64 KiB leaves room for any
#: honest one (16 topics with long node lists) and keeps parsing and validating a message in the microseconds.
MESSAGE_MAX_BYTES = 64 * 1024
#: Tornado's own limit (``max_message_size``): larger frames close the connection (1009) unread.
FRAME_MAX_BYTES = 1024 * 1024
#: Topics one connection may hold. The dashboard uses 5 (every topic once); 16 leaves room for a face that
#: also follows a few metrics windows or nodes. Each distinct topic is a query on every change, and the issue
#: measured ~17.5 ms per metrics topic: 16 of them cost ~0.3 s of the query pool, 1,000 cost 17.5 s and
#: stalled everyone.
TOPICS_MAX = 16
#: Distinct topics one user may hold over all their connections: without it, 63 connections of 16 topics each
#: would rebuild the 1,000-topic stall. Tabs of the dashboard share their 5 topics, so they cost 5 in all.
USER_TOPICS_MAX = 32

EXAMPLE = '{"subscribe": ["workers"]}'
KEYS = ("subscribe", "unsubscribe", "fresh")
SERVER_ERROR = "server error while serving this message (not a fault of the request); the server log has the details"


@dataclass(frozen=True, slots=True)
class Request:
    """A client message that passed the checks that need no state: what to drop, then what to add."""

    unsubscribe: list[str] | None  # None: the message had no "unsubscribe"
    subscribe: list[Topic] | None  # None: the message had no "subscribe"
    fresh: bool | None = None  # None: the message had no "fresh"

    @property
    def cost(self) -> int:
        """Rate-limit tokens: one per topic to compute, at least one per message."""
        return max(1, len(self.subscribe or ()))


def parse(message: str | bytes) -> Request:
    """Check a message's size and shape and parse its topics; ``ArgumentError`` naming the first bad field."""
    size = len(message) if isinstance(message, bytes) else len(message.encode())
    if size > MESSAGE_MAX_BYTES:
        raise ArgumentError("message", f"{size} bytes is over the limit of {MESSAGE_MAX_BYTES} bytes per message")
    try:
        request = orjson.loads(message)
    except orjson.JSONDecodeError:
        raise ArgumentTypeError(
            "message", f"expected a JSON object like {EXAMPLE}, got text that is not JSON"
        ) from None
    if not isinstance(request, dict):
        raise ArgumentTypeError("message", f"expected a JSON object like {EXAMPLE}, got {_show(request)}")
    unknown = [key for key in request if key not in KEYS]
    if unknown:
        raise ArgumentError(_show(unknown[0]), 'unknown field; a message has "subscribe", "unsubscribe", "fresh"')
    if not request:
        raise ArgumentError("message", f'expected "subscribe" or "unsubscribe", like {EXAMPLE}')
    fresh = request.get("fresh")
    if "fresh" in request and not isinstance(fresh, bool):
        raise ArgumentTypeError("fresh", f"expected true or false, got {_show(fresh)}")
    unsubscribe = _keys(request["unsubscribe"]) if "unsubscribe" in request else None
    subscribe = None
    if "subscribe" in request:
        items = request["subscribe"]
        if not isinstance(items, list):
            raise ArgumentTypeError("subscribe", f'expected a list of topics like ["workers"], got {_show(items)}')
        if len(items) > TOPICS_MAX:  # refused before any item is looked at: the work stays bounded
            raise ArgumentError("subscribe", f"at most {TOPICS_MAX} topics per connection, got {len(items)}")
        subscribe = topics_of(items)
    return Request(unsubscribe, subscribe, fresh)


def _keys(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ArgumentTypeError("unsubscribe", f'expected a list of topic keys like ["alerts"], got {_show(value)}')
    for i, key in enumerate(value):
        if not isinstance(key, str):
            raise ArgumentTypeError(f"unsubscribe[{i}]", f"expected a topic key (a string), got {_show(key)}")
    return value


def _show(value: Any) -> str:
    """A value as JSON for an error message, cut short: the client's text, not Python's repr of it."""
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


class ClusterWebSocket(AppHandler, WebSocketMixin, WebSocketHandler, JupyterHandler):
    """One dashboard (or script) connection; all the pushing is the broadcaster's."""

    mailbox: Mailbox | None = None
    _pump: asyncio.Task[None] | None = None
    _rate_key = ""

    @property
    def max_message_size(self) -> int:
        return FRAME_MAX_BYTES

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)  # starts WebSocketMixin's keep-alive pings
        self._rate_key = user_key(self)  # the user does not change during a connection
        self.mailbox = Mailbox(close=self.close, user=self._rate_key, writer=self.write_message)
        self._pump = asyncio.get_running_loop().create_task(self._drain(self.mailbox))
        self.app.prometheus.ws_clients.inc()

    async def on_message(self, message: str | bytes) -> None:
        box = self.mailbox
        if box is None:
            return
        try:
            try:
                request = parse(message)
            except ArgumentError:
                if self._rate_limited(1):  # a bad message costs a token too: a flood of them is a flood
                    return
                raise
            if self._rate_limited(request.cost):
                return
            await self._serve(box, request)
        except ArgumentError as exc:  # the client's own mistake, and only that
            self._send_now({"type": "error", "message": str(exc)})
        except Exception:
            self.log.exception("clusternb: serving a WebSocket message failed")
            self._send_now({"type": "error", "message": SERVER_ERROR})

    def _rate_limited(self, cost: int) -> bool:
        """Spend ``cost`` tokens of this user's bucket (the REST one); when it is empty say so and return True."""
        buckets = self.app.buckets
        wait = buckets.take(self._rate_key, time.monotonic(), cost)
        if wait <= 0:
            return False
        retry = max(1, math.ceil(wait))
        message = (
            f"rate limit of {buckets.rate:g} requests/s exceeded (a subscription costs one per topic); "
            f"this message was not processed; retry in {retry} s"
        )
        self._send_now({"type": "error", "message": message, "retry_after": retry})
        return True

    async def _serve(self, box: Mailbox, request: Request) -> None:
        """Check what needs this connection's state and the queries' own argument checks, then act."""
        gone = request.unsubscribe or []
        topics = request.subscribe or []
        self._check_limits(box, gone, topics)
        results = await self.app.broadcaster.current(topics)  # also runs each query's own argument checks
        current: dict[str, tuple[Topic, Encoded | None]] = {}  # by key: a topic listed twice is subscribed once
        failed: list[str] = []
        for i, (topic, result) in enumerate(zip(topics, results, strict=True)):
            if isinstance(result, ArgumentError):
                raise result.at(f"subscribe[{i}].{result.argument}")
            if isinstance(result, BaseException):  # the server's fault, not the request's: subscribed all the same
                self.log.error("clusternb: the first state of %s failed", topic.key, exc_info=result)
                failed.append(topic.key)
            current[topic.key] = (topic, None if isinstance(result, BaseException) else result)
        if self.mailbox is not box:  # closed while the queries ran: nobody left to answer
            return
        if request.fresh is not None:
            box.fresh = request.fresh
            if request.unsubscribe is None and request.subscribe is None:
                self._send_now({"type": "options", "fresh": box.fresh})
        if request.unsubscribe is not None:
            self.app.broadcaster.unsubscribe(box, gone)
            self._send_now({"type": "unsubscribed", "topics": gone})
        if request.subscribe is not None:
            # "subscribed" first, then the initial states: the same order a client reads them in.
            self._send_now({"type": "subscribed", "topics": list(current)})
            self.app.broadcaster.subscribe(box, current.values())
            if failed:  # a transient fault (Redis timing out under load) must not leave a page empty for good
                message = f"{SERVER_ERROR}; {', '.join(failed)} will follow when it can be computed"
                self._send_now({"type": "error", "message": message, "topics": failed})

    def _check_limits(self, box: Mailbox, gone: list[str], topics: list[Topic]) -> None:
        """Keys to unsubscribe must be subscribed; the topics after this message must fit both caps."""
        for i, key in enumerate(gone):
            if key not in box.topics:
                subscribed = list(box.topics)
                raise ArgumentError(f"unsubscribe[{i}]", f"{_show(key)} is not subscribed; subscribed: {subscribed}")
        mine = (box.topics.keys() - set(gone)) | {t.key for t in topics}
        if len(mine) > TOPICS_MAX:
            raise ArgumentError(
                "subscribe",
                f"at most {TOPICS_MAX} topics per connection; this would make {len(mine)}: unsubscribe first",
            )
        users = self.app.broadcaster.topics_of_user(box.user, leaving=box) | mine
        if len(users) > USER_TOPICS_MAX:
            raise ArgumentError(
                "subscribe",
                f"at most {USER_TOPICS_MAX} distinct topics per user over all connections; this would make "
                f"{len(users)}: unsubscribe or close another connection first",
            )

    def _send_now(self, value: dict[str, Any]) -> None:
        with contextlib.suppress(WebSocketClosedError):
            self.write_message(orjson.dumps(value))

    async def _drain(self, box: Mailbox) -> None:
        """Write what the broadcaster offers, one message at a time, so a slow peer only delays itself."""
        try:
            while True:
                await box.event.wait()
                if box.busy_since is not None:  # a direct write (Mailbox.flush) is under way: it wakes us after
                    box.event.clear()
                    continue
                await self._write_each(box, box.take())
        except (WebSocketClosedError, asyncio.CancelledError):
            pass

    async def _write_each(self, box: Mailbox, pending: list[tuple[bytes, Fanout | None]]) -> None:
        """Write ``pending`` in order; each fan-out record is settled when its write ends, and those of writes
        never made (the socket closed, the task cancelled) when the batch ends, so none is left owed."""
        left = list(pending)
        try:
            while left:
                message, fanout = left.pop(0)
                box.busy_since = time.monotonic()
                try:
                    await self.write_message(message)
                finally:
                    if fanout is not None:
                        fanout.done()
        finally:
            box.busy_since = None
            for _, fanout in left:
                if fanout is not None:
                    fanout.done()

    def on_close(self) -> None:
        if self.mailbox is not None:
            self.app.broadcaster.remove(self.mailbox)
            self.app.prometheus.ws_clients.dec()
            self.mailbox = None
        if self._pump is not None:
            self._pump.cancel()
        super().on_close()


default_handlers: list[Route] = [(r"/clusternb/api/ws", ClusterWebSocket)]
