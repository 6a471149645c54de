"""Alerting at run time: evaluate where samples are produced, persist transitions, watch for silent nodes.

Where evaluation happens:

- **node rules** run in the process that produced the sample (the in-process sampler, or the node's agent),
  once per sample, so one node's alerts are decided by one process;
- **node_offline** cannot be decided by the dead node: every sampler/agent offers to run the liveness
  check after its sample, and a Redis lease (``SET NX PX interval``) lets exactly one process do it per
  interval. It rebuilds its view from the stored records first, so it never duplicates an alert;
- **service_down** is fed by the probes of whichever process runs them.

The rules file is re-read when its modification time changes. A bad file logs one clear error (once per
version of the file) and the previous rules stay active.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping

from clusternb.alerting.engine import AlertEngine
from clusternb.alerting.loading import load_rules
from clusternb.alerting.records import Alert, Transition
from clusternb.alerting.rules import NODE_OFFLINE, RuleError
from clusternb.alerting.store import AlertStore, EngineAlertStore
from clusternb.arguments import ArgumentError, ConfigError, shown
from clusternb.config import ClusterNB
from clusternb.model import NodeSnapshot
from clusternb.redisio.errors import Unavailable
from clusternb.state.base import Liveness, StateStore

log = logging.getLogger(__name__)

Thresholds = Callable[[float], tuple[float, float]]

#: The watchdog lease lasts this share of the interval. A whole interval would race the next check of the
#: process that took it (due exactly one interval later, give or take a few ms), which then finds the lease
#: still held and skips, so a lone watcher checked only every other interval.
LEASE_SHARE = 0.9


class AlertRuntime:
    """An engine plus its persistence, rule reloading and (in cluster mode) the liveness watchdog."""

    def __init__(self, settings: ClusterNB, store: AlertStore | None = None) -> None:
        self.settings = settings
        self.rules_file = settings.alert_rules_file or None
        self._mtime = self._file_mtime()
        try:
            rules = load_rules(settings.alert_defaults, settings.alert_rules, self.rules_file)
        except RuleError as exc:
            raise ConfigError(f"alert rules: {exc}") from None
        self.engine = AlertEngine(rules, history=settings.alert_history)
        self.store: AlertStore = store if store is not None else EngineAlertStore(self.engine)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.last_reload_error: str | None = None
        self._quiet_until = 0.0  # epoch seconds before which a liveness check cannot find anything new
        self._shortest = math.inf  # the shortest node interval the last check saw

    # -- evaluation -----------------------------------------------------------------------------------------

    def on_sample(self, snapshot: NodeSnapshot) -> list[Transition]:
        """Evaluate the node rules on a fresh sample and persist what changed (a sampler sink)."""
        self.maybe_reload(snapshot.time)
        transitions = self.engine.evaluate(snapshot, snapshot.time)
        if transitions:
            self.store.apply(transitions)
        return transitions

    def check_liveness(
        self, state: StateStore, thresholds: Thresholds, now: float, interval: float
    ) -> list[Transition]:
        """Raise node_offline for silent nodes and resolve it for nodes heard again (one process at a time).

        Callers offer a check after every sample; a check runs only when it could find something new:

        - With Redis, one process per lease (``LEASE_SHARE`` of this caller's interval, or of the shortest node
          interval in the cluster if that is shorter: a server sampling every minute must not hold the watch
          for a minute over nodes sampled every second) checks; the others learn how long
          the lease has left and do not ask again before then, so 10,000 agents do not each pay a round trip
          per interval. The winner reads each node's last time and interval, not its record.
        - After a check, nothing can change before the earliest moment a node known to be online could go
          offline, so the next check waits for it (at most one offline period of this caller's interval, so a
          node that joins meanwhile is still watched soon enough). While any node is silent or any
          node_offline alert is active, checks run every time, to resolve it as soon as the node is back.
        """
        _, horizon = thresholds(interval)
        if 0 < self._quiet_until - now <= horizon:
            return []
        store, watchdog = self.store, self.store.watchdog
        lease = min(interval, self._shortest) * LEASE_SHARE
        taken = self._take_watch(lease, now)
        if taken is None:
            return []
        engine, beats = taken
        seen, departed = beats if beats is not None else state.liveness()
        out: list[Transition] = []
        quiet_until = now + horizon
        for node, (last, node_interval) in seen.items():
            if node in departed:
                out += [t for t in engine.forget_node(node, now) if t.alert.metric == NODE_OFFLINE]
                continue
            silence = now - last
            _, offline_after = thresholds(node_interval)
            if silence > offline_after:
                out += engine.evaluate_offline(node, silence, now)
                quiet_until = now  # whatever the rules make of it (a 'for', a threshold), look again next time
            else:
                out += engine.node_back(node, now)
                quiet_until = min(quiet_until, last + offline_after)
        if out:
            store.apply(out)
        if any(a.metric == NODE_OFFLINE for a in engine.active()):
            quiet_until = now
        self._quiet_until = quiet_until
        self._shortest = min((node_interval for _, node_interval in seen.values()), default=math.inf)
        if watchdog is not None and self._shortest * LEASE_SHARE < lease:
            with contextlib.suppress(Unavailable):  # the lease then ends on its own
                watchdog.shorten_watchdog(self.owner, self._shortest * LEASE_SHARE)  # faster nodes than it knew of
        return out

    def _take_watch(self, lease: float, now: float) -> tuple[AlertEngine, Liveness | None] | None:
        """The engine to judge liveness with, and the beats the watch read (None: read the state store); None
        when another process holds the watch, or Redis cannot say (then no verdict on anyone)."""
        watchdog = self.store.watchdog
        if watchdog is None:
            return self.engine, None
        try:
            watch = watchdog.take_watchdog(self.owner, lease)
        except Unavailable:
            return None
        if watch.held_for > 0:
            self._quiet_until = now + watch.held_for
            return None
        return self._seeded_engine(a for a in watch.active if a.metric == NODE_OFFLINE), watch.liveness

    def evaluate_service(self, name: str, up: bool, now: float) -> list[Transition]:
        transitions = self.engine.evaluate_service(name, up, now)
        if transitions:
            self.store.apply(transitions)
        return transitions

    def on_kernels(self, shares: Mapping[str, float | None], now: float) -> list[Transition]:
        """Evaluate the kernel rules on the kernels a server just measured (see ``AlertEngine.evaluate_kernels``)."""
        transitions = self.engine.evaluate_kernels(shares, now)
        if transitions:
            self.store.apply(transitions)
        return transitions

    def records(self) -> list[Alert]:
        return self.store.records()

    def acknowledge(self, alert_id: str, by: str | None = None) -> Alert:
        """Acknowledge an active alert; raises ``ValueError`` naming it if it is not active."""
        now = time.time()
        store = self.store
        # With Redis, the stored records (or, during an outage, this process's last view of them); the
        # store queues the acknowledgement until Redis takes it.
        engine = self._seeded_engine(store.active()) if store.watchdog is not None else self.engine
        try:
            transition = engine.acknowledge(alert_id, by=by, now=now)
        except KeyError:
            raise ArgumentError("alert_id", f"no active alert {shown(alert_id)}") from None
        self.store.apply([transition])
        return transition.alert

    def _seeded_engine(self, active: Iterable[Alert]) -> AlertEngine:
        """With Redis, act through a throwaway engine seeded with the stored active records, not this process's
        own engine: another process may have written them since this one last looked."""
        engine = AlertEngine(self.engine.rules, history=1)
        engine.restore(active)
        return engine

    # -- rules ----------------------------------------------------------------------------------------------

    def maybe_reload(self, now: float) -> bool:
        """Re-read the rules file if it changed; True when new rules are active."""
        mtime = self._file_mtime()
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            rules = load_rules(self.settings.alert_defaults, self.settings.alert_rules, self.rules_file)
        except RuleError as exc:
            self.last_reload_error = str(exc)
            log.error("clusternb: alert rules not reloaded, previous rules stay active: %s", exc)
            return False
        self.last_reload_error = None
        transitions = self.engine.replace_rules(rules, now)
        if transitions:
            self.store.apply(transitions)
        log.info("clusternb: alert rules reloaded from %s", self.rules_file)
        return True

    def _file_mtime(self) -> float | None:
        if not self.rules_file:
            return None
        try:
            return os.stat(self.rules_file).st_mtime_ns / 1e9
        except OSError:
            return None
