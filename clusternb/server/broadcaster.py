"""One timer for every WebSocket: poll each subscribed topic once per tick, push only what changed.

Per tick the broadcaster computes each distinct subscribed topic once (in the query thread pool), compares
its ``data_hash`` with the previous tick's, and on a change builds ONE message (bytes) that it drops into the
:class:`Mailbox` of every subscriber of that topic. A mailbox has one slot per topic: a newer message replaces
an unsent older one, so memory per client is bounded by its topic count whatever its speed. Each socket's own
writer task drains its mailbox; a writer stuck on one write longer than ``stall_timeout`` (a peer that stopped
reading) gets its socket closed by the next tick. Nobody waits on a slow peer: offering is a dict store.

Each broadcast carries a :class:`Fanout` that counts the writes still owed; when the last one completes (the
bytes are in every socket's kernel buffer, or the message was superseded or its client left) its duration
from message creation is reported to ``on_fanout`` (the ``clusternb_websocket_fanout_seconds`` histogram):
the server's share of the push latency, apart from the network and the clients' own speed.

Message (text frame, JSON)::

    {"type": "state", "topic": "workers", "params": {}, "key": "workers", "initial": false,
     "published": 1714564800.123, "body": {...the REST body of that topic...}}

Unchanged data costs no bytes, with one bounded exception: a topic whose data has not changed for
:data:`FRESH_EVERY` seconds (alerts, often for hours) is confirmed by one small frame per client, so a page
can say "as of 5 s ago" truthfully instead of showing the age of the last change::

    {"type": "fresh", "topics": [{"topic": "alerts", "key": "alerts", "as_of": "2024-05-01T12:00:10.000000Z"}]}

A connection that said ``{"fresh": false}`` (:attr:`Mailbox.fresh`) gets none: unchanged data costs it 0 bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import orjson
from tornado.websocket import WebSocketClosedError

from clusternb.server.payload import Encoded, iso_time
from clusternb.server.service import DataService, Topic

log = logging.getLogger(__name__)

#: Seconds an unchanged topic goes without a word before a ``fresh`` frame confirms it (see module docstring).
FRESH_EVERY = 10.0
#: The mailbox slot of ``fresh`` frames: one per client, a newer one replaces an unsent older one.
_FRESH_SLOT = "\x00fresh"


@dataclass(eq=False)
class Fanout:
    """Writes still owed for one broadcast; calls ``report(seconds since created)`` when none are left."""

    report: Callable[[float], None] | None
    created: float = field(default_factory=time.perf_counter)
    pending: int = 0

    def done(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self.report is not None:
            self.report(time.perf_counter() - self.created)


@dataclass(eq=False)
class Mailbox:
    """One client's outbox: at most one pending message per topic key (the newest)."""

    close: Callable[[], None]
    user: str = ""  # whose connection: limits on topics are per user as well as per connection
    topics: dict[str, Topic] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)  # key -> data_hash last offered
    slots: dict[str, tuple[bytes, Fanout | None]] = field(default_factory=dict)
    event: asyncio.Event = field(default_factory=asyncio.Event)
    busy_since: float | None = None  # monotonic time the current write started, None when idle
    dropped: int = 0  # messages replaced before they were sent (coalesced)
    fresh: bool = True  # wants "fresh" confirmations of unchanged topics
    #: Writes one frame now and returns what completes when its bytes are in the socket (the socket's
    #: ``write_message``); None: only the client's writer task writes (:meth:`flush` does nothing).
    writer: Callable[[bytes], asyncio.Future[None]] | None = None

    def offer(self, key: str, data_hash: str, message: bytes, fanout: Fanout | None = None) -> bool:
        """Queue ``message`` unless this client already has that data; never blocks."""
        if self.seen.get(key) == data_hash:
            return False
        self.seen[key] = data_hash
        replaced = self.slots.get(key)
        if replaced is not None:
            self.dropped += 1
            if replaced[1] is not None:
                replaced[1].done()
        if fanout is not None:
            fanout.pending += 1
        self.slots[key] = (message, fanout)
        self.event.set()
        return True

    def take(self) -> list[tuple[bytes, Fanout | None]]:
        """Everything pending with its fan-out record, emptying the slots."""
        messages = list(self.slots.values())
        self.slots.clear()
        self.event.clear()
        return messages

    def flush(self) -> None:
        """Write what is pending now, in the caller's turn of the loop, when no write of this client is under
        way; otherwise its writer task sends it after the write in progress.

        Why: a broadcast to 1,000 clients then costs 1,000 socket writes in one pass, instead of waking 1,000
        writer tasks that each take several turns of the event loop (wake, write, await the flush); those turns
        were most of the fan-out time. Memory stays bounded as before: nothing more is written to this socket
        until these writes complete, and meanwhile newer messages replace older ones in the slots.
        """
        writer = self.writer
        if writer is None or self.busy_since is not None or not self.slots:
            return
        pending = self.take()
        self.busy_since = time.monotonic()
        futures: list[asyncio.Future[None]] = []
        try:
            for message, _ in pending:
                futures.append(writer(message))
        except WebSocketClosedError:
            pass  # the socket is closing: its close handler removes this mailbox
        except Exception:
            log.exception("clusternb: a WebSocket write failed")
        for future in futures[:-1]:
            future.add_done_callback(_retrieved)
        if futures:  # writes complete in order: the last one done means all are
            futures[-1].add_done_callback(lambda future: self._written(pending, future))
        else:
            self._written(pending, None)

    def _written(self, pending: list[tuple[bytes, Fanout | None]], last: asyncio.Future[None] | None) -> None:
        if last is not None:
            _retrieved(last)
        self.busy_since = None
        for _, fanout in pending:
            if fanout is not None:
                fanout.done()
        if self.slots:
            self.event.set()  # offered meanwhile: the writer task sends it

    def discard(self, key: str | None = None) -> None:
        """Forget the pending message of ``key`` (all when None), settling its fan-out record."""
        for k in [key] if key is not None else list(self.slots):
            pending = self.slots.pop(k, None)
            if pending is not None and pending[1] is not None:
                pending[1].done()


def _retrieved(future: asyncio.Future[None]) -> None:
    """Take a finished write's outcome: a closed socket's error is expected, not worth a "never retrieved" log."""
    if not future.cancelled():
        future.exception()


def make_message(topic: Topic, encoded: Encoded, initial: bool, published: float) -> bytes:
    """The WebSocket frame for ``encoded``; the body is spliced in as bytes, never decoded and re-encoded."""
    head = {
        "type": "state",
        "topic": topic.name,
        "params": topic.as_dict(),
        "key": topic.key,
        "initial": initial,
        "published": published,
    }
    return orjson.dumps(head)[:-1] + b',"body":' + encoded.body + b"}"


class Broadcaster:
    """Owns the single polling task and the set of mailboxes."""

    def __init__(
        self,
        service: DataService,
        interval: float = 3.0,
        stall_timeout: float = 10.0,
        on_fanout: Callable[[float], None] | None = None,
    ) -> None:
        self.service = service
        self.on_fanout = on_fanout
        self.interval = interval
        self.stall_timeout = stall_timeout
        self.fresh_every = FRESH_EVERY
        self.mailboxes: set[Mailbox] = set()
        self._last: dict[str, tuple[str, bytes]] = {}  # key -> (data_hash, message) of the newest broadcast
        self._told: dict[str, float] = {}  # key -> as_of (epoch) of the newest state or fresh frame sent
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.broadcasts = 0
        self.disconnected = 0

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the polling task on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="clusternb-broadcaster")

    async def stop(self) -> None:
        """Cancel the polling task and close every client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await task
        for box in list(self.mailboxes):
            self._drop(box)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:  # one bad tick must not end pushes for everyone
                log.exception("clusternb: broadcast tick failed")

    # -- subscribers --------------------------------------------------------------------------------------

    async def current(self, topics: Sequence[Topic]) -> list[Encoded | BaseException]:
        """The current result of each topic, computed side by side; a topic that failed has its exception in
        its place (an ``ArgumentError`` for its own bad parameters), so a caller can validate them all first."""
        return await asyncio.gather(*(self.service.get(t) for t in topics), return_exceptions=True)

    def subscribe(self, box: Mailbox, current: Iterable[tuple[Topic, Encoded | None]]) -> None:
        """Add topics to a mailbox with their current results (from :meth:`current`), offered at once; a topic
        without one (its computation failed) gets its state from the next tick that computes it.

        Never awaits: the initial states wait in the mailbox until its writer runs, after anything the caller
        sends before its own next ``await`` (the WebSocket's ``subscribed`` acknowledgement).
        """
        self.mailboxes.add(box)
        self.start()
        now = time.time()
        for topic, encoded in current:
            box.topics[topic.key] = topic
            box.seen.pop(topic.key, None)  # a (re)subscription always gets the current state
            if encoded is None:
                self._last.pop(topic.key, None)  # the next tick offers it, even unchanged since the last broadcast
                continue
            box.offer(topic.key, encoded.data_hash, make_message(topic, encoded, True, now))
            self._told.setdefault(topic.key, encoded.created)
            last = self._last.get(topic.key)
            if last is not None and last[0] != encoded.data_hash:
                # A tick broadcast other data while this result was computed (older or newer: unknown). Forget
                # it so the next tick offers its result again; mailboxes that already have it skip the offer.
                del self._last[topic.key]

    def topics_of_user(self, user: str, leaving: Mailbox | None = None) -> set[str]:
        """The distinct topic keys ``user`` holds over all their connections (``leaving``'s left out)."""
        return {key for box in self.mailboxes if box.user == user and box is not leaving for key in box.topics}

    def unsubscribe(self, box: Mailbox, keys: Iterable[str]) -> None:
        for key in keys:
            box.topics.pop(key, None)
            box.seen.pop(key, None)
            box.discard(key)

    def remove(self, box: Mailbox) -> None:
        """Forget a client (its socket closed)."""
        self.mailboxes.discard(box)
        box.discard()

    def _drop(self, box: Mailbox) -> None:
        self.remove(box)
        with contextlib.suppress(Exception):
            box.close()

    # -- the tick -----------------------------------------------------------------------------------------

    async def tick(self) -> int:
        """One poll of every subscribed topic; returns how many topics changed."""
        self.ticks += 1
        self._close_stalled(time.monotonic())
        topics = self._wanted()
        if not topics:
            return 0
        results = await asyncio.gather(*(self.service.get(t) for t in topics), return_exceptions=True)
        changed = 0
        confirmed: dict[str, dict[str, str]] = {}
        for topic, result in zip(topics, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("clusternb: topic %s failed: %s", topic.key, result)
                continue
            last = self._last.get(topic.key)
            if last is None or last[0] != result.data_hash:
                self._broadcast(topic, result)
                changed += 1
                continue
            item = self._still_current(topic, result)
            if item is not None:
                confirmed[topic.key] = item
        if confirmed:
            self._confirm(confirmed)
        return changed

    def _close_stalled(self, now: float) -> None:
        """Close the sockets whose writer has been stuck on one write too long: a peer that stopped reading."""
        for box in list(self.mailboxes):
            if box.busy_since is not None and now - box.busy_since > self.stall_timeout:
                log.warning("clusternb: closing a WebSocket that stopped reading for %.0f s", now - box.busy_since)
                self.disconnected += 1
                self._drop(box)

    def _wanted(self) -> list[Topic]:
        """The distinct topics some client holds; what was remembered of any other topic is forgotten."""
        wanted: dict[str, Topic] = {}
        for box in self.mailboxes:
            wanted.update(box.topics)
        for key in set(self._last) - set(wanted):
            del self._last[key]
        for key in set(self._told) - set(wanted):
            del self._told[key]
        return list(wanted.values())

    def _broadcast(self, topic: Topic, result: Encoded) -> None:
        """Offer a changed result, as one message, to every subscriber of its topic."""
        self._told[topic.key] = result.created
        fanout = Fanout(self.on_fanout)
        message = make_message(topic, result, False, time.time())
        self._last[topic.key] = (result.data_hash, message)
        self.broadcasts += 1
        fanout.pending += 1  # held until every mailbox was offered, so it cannot finish half-way
        for box in self.mailboxes:
            if topic.key in box.topics and box.offer(topic.key, result.data_hash, message, fanout):
                box.flush()
        fanout.done()

    def _still_current(self, topic: Topic, result: Encoded) -> dict[str, str] | None:
        """The ``fresh`` item of an unchanged result when its subscribers were last told about it
        :data:`FRESH_EVERY` seconds ago or more (else None: nothing to say yet)."""
        if result.created - self._told.get(topic.key, result.created) < self.fresh_every:
            return None
        self._told[topic.key] = result.created
        return {"topic": topic.name, "key": topic.key, "as_of": iso_time(result.created)}

    def _confirm(self, confirmed: dict[str, dict[str, str]]) -> None:
        """One ``fresh`` frame per client, naming those of its topics that are unchanged but current."""
        for box in self.mailboxes:
            if not box.fresh:
                continue
            mine = [item for key, item in confirmed.items() if key in box.topics]
            if mine:
                message = orjson.dumps({"type": "fresh", "topics": mine})
                box.discard(_FRESH_SLOT)  # an unsent older confirmation is simply outdated: not a dropped state
                box.offer(_FRESH_SLOT, message.decode(), message)
