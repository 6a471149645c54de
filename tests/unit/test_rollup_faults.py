"""Rollups when the store misbehaves: a block load that fails, a hostile record (reviewed bugs)."""

from __future__ import annotations

import time

from clusternb.state.memory import MemoryStateStore
from clusternb.state.rollup import HOUR, MINUTE, Block, Roller, Tier
from tests.helpers import make_snapshot

DAY0 = 86_400.0 * 19_700  # a day's first minute: closing it loads the day block too


class Held:
    """What a store keeps, as a roller's ``load`` reads it; ``down``: the tiers whose loads fail now."""

    def __init__(self) -> None:
        self.blocks: dict[tuple[str, str, float], Block] = {}
        self.down: set[str] = set()

    def load(self, node: str, tier: Tier, start: float) -> Block | None:
        if tier.name in self.down:
            raise ConnectionError("Redis unreachable")
        return self.blocks.get((node, tier.name, start))

    def keep(self, blocks: list[Block]) -> None:
        for block in blocks:
            self.blocks[(block.node, block.tier.name, block.start)] = block


def test_a_failed_day_block_load_neither_double_counts_nor_drops_samples() -> None:
    held = Held()
    roller = Roller(held.load)
    held.keep(roller.add(make_snapshot("n1", time=DAY0 + 1)))
    held.keep(roller.add(make_snapshot("n1", time=DAY0 + 2)))
    held.down.add(HOUR.name)
    held.keep(roller.add(make_snapshot("n1", time=DAY0 + 61)))  # closes minute 0: the day block cannot load
    held.keep(roller.add(make_snapshot("n1", time=DAY0 + 121)))  # closes minute 1: still down
    held.down.clear()
    held.keep(roller.add(make_snapshot("n1", time=DAY0 + 181)))  # closes minutes 0, 1 and 2
    held.keep(roller.flush())
    minutes = held.blocks[("n1", MINUTE.name, DAY0)]
    assert (minutes.slots, minutes.counts) == ([0, 1, 2, 3], [2, 1, 1, 1])
    assert held.blocks[("n1", HOUR.name, DAY0)].counts == [5]
    assert roller.load_failures == 2


def test_nodes_that_stop_sampling_are_flushed_and_forgotten() -> None:
    """Churning Dask workers: each writes a few samples and is gone; the roller holds only the live ones."""
    held = Held()
    roller = Roller(held.load)
    for i in range(50):
        t = DAY0 + 60 * i
        held.keep(roller.add(make_snapshot(f"worker-{i}", time=t + 1)))
        held.keep(roller.add(make_snapshot("scheduler", time=t + 2)))
    assert set(roller._open) <= {"scheduler", *(f"worker-{i}" for i in range(40, 50))}
    assert {node for node, _ in roller._blocks} <= set(roller._open)
    worker = [b for b in held.blocks.values() if b.node == "worker-0" and b.tier is MINUTE]
    assert worker and worker[0].counts == [1]  # its minute was written when it was forgotten


def test_the_memory_store_forgets_rollups_no_one_wrote_for_their_retention() -> None:
    store = MemoryStateStore()
    now = time.time()
    for i in range(3):
        store.put(make_snapshot(f"worker-{i}", time=now - 120))
        store.put(make_snapshot(f"worker-{i}", time=now - 30))  # closes a minute: its blocks are written
    store.put(make_snapshot("w-ahead", time=now + 365 * 86_400))
    store.leave("w-ahead", now)  # a block a year ahead: dropped at once, and the node not listed for it
    assert store.rolled_nodes() == ["worker-0", "worker-1", "worker-2"]
    store._sweep_rolls(now + MINUTE.retention + 2 * MINUTE.block)  # a week later: the minutes expire
    assert store.rollups(MINUTE, 0, nodes=["worker-0"]) == []
    assert store.rolled_nodes() == ["worker-0", "worker-1", "worker-2"]  # the hours stay for 90 days
    store._sweep_rolls(now + HOUR.retention + 2 * HOUR.block)
    assert store.rolled_nodes() == []
