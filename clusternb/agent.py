"""The node agent: sample this host every interval and publish each snapshot to the cluster's Redis state.

An agent is a daemon that must outlive every hiccup of the network and of Redis, so it never exits on its own:

- It keeps sampling while Redis is unreachable, because rates (CPU %, bytes/s) are deltas between consecutive
  samples of the same :class:`LocalSampler`; a paused sampler would report one huge averaged spike on resume.
- A failed publish is logged once per outage ("redis unreachable, will retry"), then retried with capped
  exponential backoff so a thousand agents do not hammer a Redis that is starting up; the recovery is logged
  once too. The backoff is the agent's :class:`~clusternb.redisio.link.RedisLink`'s, the one retry policy of
  clusternb: while it runs, a publish fails at once without touching the network. Samples taken meanwhile
  are counted as ``dropped``, not queued: the newest sample is what matters, and a backlog would grow without
  bound during a long outage. On a Redis Cluster, a failover is such an outage, of a second or two.
- SIGTERM/SIGINT record a clean departure (``store.leave``), best effort within the store's short timeouts,
  so the cluster view shows "left" instead of "offline", then exit 0.

The loop holds one sampler, one store and one backoff; each iteration allocates only the snapshot and what the
store needs to encode it, and never iterates processes.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from clusternb.arguments import ConfigError
from clusternb.config import ClusterNB
from clusternb.model import NodeSnapshot
from clusternb.redisio.errors import RedisFault, Unavailable
from clusternb.sources.local import LocalSampler
from clusternb.state.base import StateStore

log = logging.getLogger("clusternb.agent")

#: Longest wait between two publish attempts while Redis is unreachable.
BACKOFF_CAP = 10.0
#: Socket timeout of the agent's Redis commands. Publishing is not latency-critical (unlike a cached query),
#: so it tolerates a busy Redis longer than ``redis_socket_timeout`` before counting an outage.
PUBLISH_TIMEOUT = 1.0


class Agent:
    """Samples every ``interval`` seconds and publishes to ``store``; :meth:`run` loops until :meth:`stop`.

    ``after_publish(snapshot)`` runs after each published sample (alert rules, the liveness watchdog).
    """

    def __init__(
        self,
        sample: Callable[[], NodeSnapshot],
        store: StateStore,
        interval: float,
        node: str,
        after_publish: Callable[[NodeSnapshot], object] | None = None,
    ) -> None:
        self.sample = sample
        self.after_publish = after_publish
        self.store = store
        self.interval = interval
        self.node = node
        self._clock: Callable[[], float] = time.monotonic  # the cadence's clock: steady across wall-clock steps
        self._stop = threading.Event()
        self._failures = 0  # consecutive failed publishes; 0 means Redis is reachable
        self._down_since = 0.0
        self._dropped_before = 0  # dropped count when the current outage began
        self._seen_errors: set[str] = set()
        self.samples = 0
        self.published = 0
        self.dropped = 0
        self.outages = 0

    @property
    def reachable(self) -> bool:
        """False from the first failed publish of an outage until the next publish succeeds."""
        return self._failures == 0

    def stop(self) -> None:
        """Ask :meth:`run` to return; safe to call from a signal handler or another thread."""
        self._stop.set()

    def run(self) -> None:
        """Sample and publish on a steady cadence until :meth:`stop`; a slow iteration skips ticks, never bursts."""
        due = self._clock()
        while not self._stop.is_set():
            self.step()
            due += self.interval
            now = self._clock()
            if due < now:
                due += self.interval * ((now - due) // self.interval + 1)
            self._stop.wait(due - now)

    def step(self) -> NodeSnapshot | None:
        """One sample and, unless backing off, one publish. Never raises."""
        try:
            snapshot = self.sample()
        except Exception as exc:
            self._log_once("sample", exc)
            return None
        self.samples += 1
        now = self._clock()
        try:
            self.store.put(snapshot)  # fails at once, without a round trip, while the link backs off
        except Unavailable as exc:
            self._publish_failed(exc, now)
        except Exception as exc:  # not Redis: a bug or an unencodable value; keep sampling, say it once
            self.dropped += 1
            self._log_once("publish", exc)
        else:
            self._published(now)
            if self.after_publish is not None:
                try:
                    self.after_publish(snapshot)  # alert rules, liveness watchdog: after the data is out
                except Exception as exc:
                    self._log_once("alerts", exc)
        return snapshot

    def leave(self) -> bool:
        """Record a clean departure; best effort (False when Redis did not take it)."""
        try:
            self.store.leave(self.node, time.time())
        except RedisFault as exc:
            log.warning("could not record the departure of %r: %s", self.node, exc)
            return False
        return True

    def _publish_failed(self, exc: Unavailable, now: float) -> None:
        self.dropped += 1
        if self._failures == 0:
            self.outages += 1
            self._down_since = now
            self._dropped_before = self.dropped - 1
            log.warning("redis unreachable (%s), will retry", exc.reason)
        self._failures += 1

    def _published(self, now: float) -> None:
        self.published += 1
        if self._failures:
            log.warning(
                "redis reachable again after %.1f s; publishing resumed (%d samples were not published)",
                now - self._down_since,
                self.dropped - self._dropped_before,
            )
            self._failures = 0

    def _log_once(self, what: str, exc: Exception) -> None:
        kind = f"{what}:{type(exc).__name__}"
        if kind not in self._seen_errors:
            self._seen_errors.add(kind)
            log.error("%s failed (further %s errors are not logged): %s", what, type(exc).__name__, exc)


def run_agent(settings: ClusterNB, install_signals: bool = True) -> int:
    """Run an agent for this host as ``settings`` describe until SIGTERM/SIGINT; returns the exit status (0).

    Raises ``ValueError`` for settings that cannot work (no Redis URL, malformed URL, missing disk path)
    before anything starts, so the CLI can report them in one line.
    """
    from clusternb.alerting.runtime import AlertRuntime
    from clusternb.alerting.store import RedisAlertStore
    from clusternb.redisio.link import RedisLink
    from clusternb.state.redis import RedisStateStore

    if not settings.redis_url:
        raise ConfigError("no Redis URL: pass --redis URL or set CLUSTERNB_REDIS_URL")
    # First retry one interval after a failure, then 2x, 4x ... up to BACKOFF_CAP (or the interval, if longer).
    link = RedisLink.from_settings(
        settings,
        socket_timeout=PUBLISH_TIMEOUT,
        backoff_base=settings.interval / 2,
        backoff_cap=max(BACKOFF_CAP, settings.interval),
        name="clusternb-agent",
        outage_note="samples are dropped until it answers again",
    )
    store = RedisStateStore.from_settings(settings, link)
    # The agent evaluates its own node's alert rules (bad rules stop it here, in one line).
    try:
        sampler = LocalSampler.from_settings(settings, source="agent")
    except Exception:
        store.close()
        link.close()
        raise
    alerts = RedisAlertStore(link, history=settings.alert_history, state=store, rejections=store.rejections)
    alerting = AlertRuntime(settings, store=alerts)

    def evaluate(snapshot: NodeSnapshot) -> None:
        alerting.on_sample(snapshot)
        alerting.check_liveness(store, settings.thresholds, time.time(), settings.interval)

    agent = Agent(sampler.sample, store, settings.interval, node=sampler.node, after_publish=evaluate)
    previous: list[tuple[signal.Signals, Any]] = []
    if install_signals:

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            agent.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous.append((sig, signal.signal(sig, _on_signal)))
    log.info(
        "publishing node %r every %g s to %s (labels %s)",
        agent.node,
        settings.interval,
        link.safe_url,
        dict(settings.labels) or "none",
    )
    try:
        agent.run()
    finally:
        left = agent.leave()
        store.close()
        link.close()
        sampler.close()
        for sig, handler in previous:
            signal.signal(sig, handler)
    log.info(
        "stopped after %d samples (%d published, %d not)%s",
        agent.samples,
        agent.published,
        agent.dropped,
        "; departure recorded" if left else "",
    )
    return 0
