"""Rollups when the store misbehaves: a block load that fails, a hostile record (reviewed bugs)."""

from __future__ import annotations

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
