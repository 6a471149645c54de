"""The one background thread per process that samples and writes into the state store.

Readers never sample: they read what this thread wrote. A failing sample or write is logged once per kind of
error and counted; the thread never dies of it, because a monitor that stops monitoring on the first
hiccup is worse than none.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from clusternb.model import NodeSnapshot

log = logging.getLogger(__name__)

SampleFn = Callable[[], NodeSnapshot | None]  # None: the sample wrote its own results
Sink = Callable[[NodeSnapshot], None]


class Sampler:
    """Calls ``sample`` every ``interval`` seconds and hands each snapshot to every sink, in order."""

    def __init__(
        self,
        sample: SampleFn,
        sinks: list[Sink],
        interval: float,
        first_delay: float = 0.25,
        name: str = "clusternb-sampler",
    ) -> None:
        self._sample = sample
        self.sinks = list(sinks)
        self.interval = interval
        self._first_delay = min(first_delay, interval)
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._seen_errors: set[str] = set()
        self.samples = 0
        self.errors = 0
        self.last_error: str | None = None

    def start(self) -> Sampler:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait_first(self, timeout: float) -> bool:
        """Block until the first sample was written (so a fresh process has something to show)."""
        return self._first.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run_once(self) -> NodeSnapshot | None:
        """Take one sample and feed the sinks; errors are counted and logged once per kind, never raised."""
        try:
            snapshot = self._sample()
            if snapshot is not None:
                for sink in self.sinks:
                    sink(snapshot)
        except Exception as exc:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            kind = type(exc).__name__
            if kind not in self._seen_errors:
                self._seen_errors.add(kind)
                log.warning("clusternb sampler error (further %s errors are counted, not logged): %s", kind, exc)
            return None
        self.samples += 1
        self._first.set()
        return snapshot

    def _run(self) -> None:
        delay = self._first_delay
        while not self._stop.wait(delay):
            started = time.monotonic()
            self.run_once()
            # Keep a steady cadence: the next sample is due one interval after this one started.
            delay = max(self.interval - (time.monotonic() - started), 0.0)
