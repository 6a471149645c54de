"""The runaway-kernel rule: one alert per kernel over its share of the node's memory, ended when the kernel frees
the memory or is gone, and never naming the notebook's path (alerts are seen by every user)."""

from __future__ import annotations

from typing import Any

from clusternb.alerting.engine import AlertEngine
from clusternb.alerting.rules import DEFAULT_RULES, KERNEL_MEMORY, Rule, kernel_subject
from clusternb.config import ClusterNB
from clusternb.kernel_usage.board import MemoryBoard
from clusternb.kernel_usage.service import KernelService
from clusternb.state.memory import MemoryStateStore
from tests.helpers import make_kernel, make_report

T0 = 1_700_000_000.0
RULE = Rule("kernel_memory", KERNEL_MEMORY, ">", 50, for_s=0, clear=40, severity="warning")


def test_the_default_rule_watches_every_kernel_for_a_minute() -> None:
    rule = next(r for r in DEFAULT_RULES if r.metric == KERNEL_MEMORY)
    assert (rule.threshold, rule.for_s, rule.clear, rule.kind) == (50.0, 60.0, 40.0, "kernel")
    assert "n1/kernel-abcdef12 holds 62%" in rule.render(kernel_subject("n1", "abcdef12-3456"), 62.4)


def test_a_kernel_alert_fires_once_updates_and_resolves_when_the_memory_is_freed() -> None:
    engine = AlertEngine([RULE])
    subject = kernel_subject("n1", "k1")
    assert [t.kind for t in engine.evaluate_kernels({subject: 62.0}, T0)] == ["fired"]
    assert [t.kind for t in engine.evaluate_kernels({subject: 70.0}, T0 + 1)] == ["updated"]
    assert [t.kind for t in engine.evaluate_kernels({subject: 45.0}, T0 + 2)] == ["updated"]  # above clear: firing
    assert [t.kind for t in engine.evaluate_kernels({subject: 10.0}, T0 + 3)] == ["resolved"]
    assert engine.active() == []


def test_a_kernel_that_is_gone_ends_its_alert_and_only_this_servers_kernels_are_judged() -> None:
    fired: list[Any] = []
    service = KernelService(ClusterNB(), MemoryBoard(60.0), MemoryStateStore())
    engine = AlertEngine([RULE])
    service.on_shares = lambda shares, now: fired.extend(engine.evaluate_kernels(shares, now))
    big, small = make_kernel("big", pss_bytes=600), make_kernel("small", pss_bytes=10)
    shares = service._shares(make_report("n1", kernels=(big, small)), memory=1000)
    assert shares == {kernel_subject("n1", "big"): 60.0, kernel_subject("n1", "small"): 1.0}
    service.on_shares(shares, T0)
    assert [(t.kind, t.alert.node) for t in fired] == [("fired", "n1/kernel-big")]
    assert "big.ipynb" not in fired[0].alert.message
    gone = service._shares(make_report("n1", kernels=(small,)), memory=1000)
    assert gone == {kernel_subject("n1", "big"): None, kernel_subject("n1", "small"): 1.0}
    service.on_shares(gone, T0 + 1)
    assert [t.kind for t in fired] == ["fired", "resolved"]


def test_a_server_that_stops_ends_its_kernel_alerts() -> None:
    ended: list[Any] = []
    service = KernelService(ClusterNB(), MemoryBoard(60.0), MemoryStateStore())
    service.on_shares = lambda shares, now: ended.append(shares)
    service._shares(make_report("n1", kernels=(make_kernel("big", pss_bytes=600),)), memory=1000)
    service.close()
    assert ended == [{kernel_subject("n1", "big"): None}]


def test_a_report_lives_three_of_its_own_intervals() -> None:
    board = MemoryBoard(expire_after=30.0)
    import time as clock

    slow = make_report("slow", time=clock.time() - 45, interval_s=60.0)  # every minute: 45 s is not late
    board.put(slow)
    assert board.reports() == [slow]
