"""One poller per kernel: a single background thread that runs each query the open panels need once per tick.

Why a thread and not an asyncio task on the kernel's loop: the shell loop is busy while a cell runs, and a
long cell (a training run, a ``time.sleep``) is exactly when someone watches the cluster panel. A thread keeps
the panel live meanwhile; the queries are cached and cheap, and comm sends are safe from other threads
(ipykernel forwards IOPub traffic through its IOPub thread).

ipykernel 7 resolves a message's parent header from a ``ContextVar`` (ipywidgets#4001, #4020, ipykernel#1450):
a bare thread falls back to whatever request the shell handled last, so updates would be attributed to
unrelated cells. Each subscriber therefore carries the ``contextvars.Context`` copied in the cell that created
it, and the poller applies that subscriber's updates inside ``context.run``: messages keep the parent header
of the cell showing the panel.

Lifecycle: the thread starts with the first subscriber and stops (and is joined) when the last one leaves,
so no thread outlives its panels. Each subscriber has its own interval; the thread sleeps until the earliest
one is due, runs the union of the due subscribers' queries (deduplicated per client), and hands each its
results. Whether anything is sent is the subscriber's business: it re-renders only what changed.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from clusternb import arguments
from clusternb.params import Call
from clusternb.queries import Client, QueryResult

log = logging.getLogger(__name__)

#: Bounds of a panel's refresh interval, in seconds.
MIN_INTERVAL = 0.2
MAX_INTERVAL = 3600.0
#: How long the thread sleeps when nothing is due (paused panels only); a wake-up cuts it short.
IDLE_WAIT = 60.0


#: A query by name with hashable parameters, so equal needs of different sections run once per tick.
Query = Call

#: What a subscriber receives: each of its queries' result, or the exception that query raised.
Results = Mapping[Query, "QueryResult | Exception"]


class Subscriber(Protocol):
    """What the poller needs from a panel."""

    @property
    def interval(self) -> float: ...
    @property
    def paused(self) -> bool: ...
    @property
    def context(self) -> contextvars.Context: ...
    def client(self) -> Client: ...
    def queries(self) -> set[Query]: ...
    def apply(self, results: Results) -> int: ...
    def report_error(self, error: BaseException) -> None: ...


def check_interval(value: float) -> float:
    """Validate a refresh interval (seconds): an ``ArgumentError`` naming ``interval`` otherwise."""
    return arguments.number("interval", value, MIN_INTERVAL, MAX_INTERVAL)


@dataclass
class TickReport:
    """What one tick did: handy for tests and the benchmark."""

    subscribers: int = 0
    queries: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Entry:
    sub: Subscriber
    due: float = 0.0
    #: The memo keys its last tick wanted: the poller keeps only results some registered subscriber wants.
    keys: frozenset[tuple[int, Query]] = frozenset()


class Poller:
    """Runs the due subscribers' queries once per tick on one daemon thread; see the module docstring."""

    def __init__(self, name: str = "clusternb-panels", autostart: bool = True) -> None:
        self.name = name
        self.autostart = autostart
        self.ticks = 0
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()  # guards _entries and the thread handle
        self._tick_lock = threading.Lock()  # one tick at a time: the thread's, refresh() or a test's
        self._wake = threading.Event()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        # Each query's last result, per client (its serial: a freed client's id may come back for a new one).
        self._memo: dict[tuple[int, Query], QueryResult] = {}
        self.reused = 0  # results handed out again uncopied, the cache holding the same entry (see _query)

    # -- subscribers --------------------------------------------------------------------------------------

    def register(self, sub: Subscriber, first_due: float | None = None) -> None:
        """Add a subscriber, first due at ``first_due`` (monotonic; default: one interval from now)."""
        due = time.monotonic() + sub.interval if first_due is None else first_due
        with self._lock:
            self._entries[id(sub)] = _Entry(sub, due)
            if self.autostart and self._thread is None:
                self._start_locked()
        self.wake()

    def unregister(self, sub: Subscriber) -> None:
        """Remove a subscriber; the last one out stops the thread and waits for it."""
        with self._lock:
            self._entries.pop(id(sub), None)
            if not self._entries:
                self._memo.clear()
            if self._entries or self._thread is None:
                return
            thread, stop = self._thread, self._stop
            self._thread = self._stop = None
        assert stop is not None
        stop.set()
        self._wake.set()
        if thread is not threading.current_thread():
            thread.join(timeout=10)

    @property
    def subscribers(self) -> list[Subscriber]:
        with self._lock:
            return [e.sub for e in self._entries.values()]

    @property
    def thread(self) -> threading.Thread | None:
        """The running thread, or None when no subscriber is registered."""
        return self._thread

    def wake(self) -> None:
        """Re-plan now: an interval changed, a panel resumed or registered."""
        self._wake.set()

    def reschedule(self, sub: Subscriber, due: float | None = None) -> None:
        """Move a subscriber's next tick (default: one of its intervals from now)."""
        with self._lock:
            entry = self._entries.get(id(sub))
            if entry is not None:
                entry.due = time.monotonic() + sub.interval if due is None else due
        self.wake()

    # -- ticking ------------------------------------------------------------------------------------------

    def tick(self, now: float | None = None, force: bool = False) -> TickReport:
        """Serve every due (or, with ``force``, every) unpaused subscriber. Never raises."""
        with self._tick_lock:
            now = time.monotonic() if now is None else now
            with self._lock:
                due = [e for e in self._entries.values() if not e.sub.paused and (force or e.due <= now)]
                for entry in due:
                    entry.due = now + entry.sub.interval
            self.ticks += 1
            return self._serve([e.sub for e in due])

    def refresh(self, sub: Subscriber) -> TickReport:
        """Serve one subscriber now, whether due or paused (a panel's first paint, a refresh button)."""
        with self._tick_lock:
            return self._serve([sub])

    def _serve(self, subs: list[Subscriber]) -> TickReport:
        report = TickReport(subscribers=len(subs))
        results: dict[tuple[int, Query], QueryResult | Exception] = {}
        wanted: list[tuple[Subscriber, Client | None, set[Query]]] = []
        for sub in subs:
            try:
                client, queries = sub.client(), sub.queries()
            except Exception as exc:  # e.g. the default client cannot be created
                wanted.append((sub, None, set()))
                self._deliver_error(sub, exc, report)
                continue
            wanted.append((sub, client, queries))
            for query in queries:
                key = (client.serial, query)
                if key not in results:
                    results[key] = self._query(key, query, client, report)
        self._forget(wanted)
        for sub, maybe_client, queries in wanted:
            if maybe_client is None:
                continue
            mine = {q: results[(maybe_client.serial, q)] for q in queries}
            try:
                # Run in the context of the cell that created the panel: its parent header goes on the messages.
                report.updated += sub.context.run(sub.apply, mine)
            except Exception as exc:
                self._deliver_error(sub, exc, report)
        return report

    def _query(
        self, key: tuple[int, Query], query: Query, client: Client, report: TickReport
    ) -> QueryResult | Exception:
        """The query's result; the last one again, uncopied, while it still says what a recompute would.

        The poller holds each result and hands it back (``holding``): the client keeps it while the cache holds
        the very same entry or while nothing it was computed from changed, and extends a held metrics frame by
        the new samples (:mod:`clusternb.held`). The read is counted as the cache hit it is.
        """
        memo = self._memo.get(key)
        try:
            result = query.run(client, held=memo, holding=True)
        except Exception as exc:
            report.queries += 1
            return exc
        if result is memo:
            self.reused += 1
        else:
            report.queries += 1
            self._memo[key] = result
        return result

    def _forget(self, wanted: list[tuple[Subscriber, Client | None, set[Query]]]) -> None:
        """Note what each served subscriber wants now, and drop the held results none registered wants (a closed
        panel's, a query a panel no longer asks, a client no panel uses)."""
        with self._lock:
            for sub, client, queries in wanted:
                entry = self._entries.get(id(sub))
                if entry is not None and entry.sub is sub:
                    entry.keys = frozenset() if client is None else frozenset((client.serial, q) for q in queries)
            keep = {key for entry in self._entries.values() for key in entry.keys}
            # A subscriber served but not registered (a first paint) keeps its results until its next tick.
            keep.update((c.serial, q) for _, c, queries in wanted if c is not None for q in queries)
            for key in [key for key in self._memo if key not in keep]:
                del self._memo[key]

    @staticmethod
    def _deliver_error(sub: Subscriber, exc: Exception, report: TickReport) -> None:
        report.errors.append(f"{type(exc).__name__}: {exc}")
        try:
            sub.context.run(sub.report_error, exc)
        except Exception:  # the panel cannot even show it: log, never let it kill the thread
            log.exception("clusternb panel could not report an error")

    # -- the thread ---------------------------------------------------------------------------------------

    def _start_locked(self) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop,), name=self.name, daemon=True)
        self._thread, self._stop = thread, stop
        thread.start()

    def _next_delay(self) -> float:
        with self._lock:
            dues = [e.due for e in self._entries.values() if not e.sub.paused]
        return IDLE_WAIT if not dues else min(dues) - time.monotonic()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            delay = self._next_delay()
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue
            try:
                self.tick()
            except Exception:  # tick() reports per panel; this is a bug in the poller itself
                log.exception("clusternb poller tick failed")
                stop.wait(1.0)


_poller: Poller | None = None
_poller_lock = threading.Lock()


def get_poller() -> Poller:
    """The kernel's one poller, shared by every panel."""
    global _poller  # noqa: PLW0603
    with _poller_lock:
        if _poller is None:
            _poller = Poller()
        return _poller
