"""The rollup half of a state store: fold what ``put`` receives, keep the blocks, read them back checked.

A store mixes :class:`Rolling` in and implements only the bytes (as aiocache's backends implement only
``_get``/``_set``): :meth:`Rolling._keep_blocks` (write records), :meth:`Rolling._read_blocks` (read records of
some block starts), :meth:`Rolling._drop_block` (delete a rejected record if it is still the same bytes) and
:meth:`Rolling.rolled_nodes`. Folding (:class:`~clusternb.state.rollup.Roller`), encoding and validation
(:mod:`clusternb.state.rollup_codec`) and the counting of rejected records happen here, once for every store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

from clusternb.model import NodeSnapshot, SchemaError
from clusternb.redisio.errors import RedisFault
from clusternb.rejects import Rejections
from clusternb.state import rollup_codec
from clusternb.state.bounds import HistoryBounds
from clusternb.state.rollup import Block, Roller, Tier, block_starts

#: What a rejected rollup record is counted as (:class:`~clusternb.rejects.Rejections` kind).
KIND = "rollup"
log = logging.getLogger(__name__)
_A = TypeVar("_A")


class Rolling:
    """Rollups of the metric fields kept beside a store's raw history (see :mod:`clusternb.state.rollup`)."""

    rejections: Rejections
    #: This store's folding of the samples it is given: ``Roller(self._load_block)``, made by the store.
    roller: Roller
    #: Folded blocks a store could not write (Redis unreachable); each heals when its next minute is written.
    rollup_write_failures = 0
    #: How far ahead of this host's clock a row may start (a store with settings sets its own).
    max_clock_skew: float = HistoryBounds().max_clock_skew

    # -- what a store implements ----------------------------------------------------------------------------

    def _keep_blocks(self, records: Sequence[tuple[Block, bytes]]) -> None:
        """Store each block's record (replacing the one of the same node, tier and start), trimmed to the tier's
        retention; may raise :class:`~clusternb.redisio.errors.RedisFault`."""
        raise NotImplementedError

    def _read_blocks(self, tier: Tier, starts: Sequence[float], nodes: Sequence[str]) -> list[tuple[str, float, bytes]]:
        """The records held for ``nodes`` at those block starts, as (node, start, record); missing ones left out."""
        raise NotImplementedError

    def _drop_block(self, node: str, tier: Tier, start: float, record: bytes) -> None:
        """Delete a rejected record if it still holds those bytes (a good write since then must survive)."""

    def rolled_nodes(self) -> list[str]:
        """Every node with rollups kept, sorted."""
        raise NotImplementedError

    # -- the shared part ------------------------------------------------------------------------------------

    def _roll(self, snapshot: NodeSnapshot) -> None:
        """Fold a sample just stored; write the blocks a closed minute changed. Never raises: a block that could
        not be loaded or written is counted, and healed by a later minute."""
        self._write(self._counting(self.roller.add, snapshot))

    def _flush_rollups(self, node: str | None = None) -> None:
        """Write the open minute of ``node`` (None: every node): a node leaving, a store closing."""
        self._write(self._counting(self.roller.flush, node))

    def _counting(self, fold: Callable[[_A], list[Block]], arg: _A) -> list[Block]:
        before = self.roller.load_failures
        blocks = fold(arg)
        self.rollup_write_failures += self.roller.load_failures - before  # loads that failed: Redis unreachable
        return blocks

    def _write(self, blocks: list[Block]) -> None:
        if not blocks:
            return
        try:
            self._keep_blocks([(block, rollup_codec.encode(block)) for block in blocks])
        except RedisFault:  # the roller still holds the blocks: the next minute rewrites them whole
            self.rollup_write_failures += 1
        except Exception:  # a block that cannot be encoded (whatever a hostile record led to): never breaks put()
            self.rollup_write_failures += 1
            log.debug("rollup blocks not written", exc_info=True)

    def rollups(
        self, tier: Tier, since: float, until: float | None = None, nodes: Collection[str] | None = None
    ) -> list[Block]:
        """Rows of ``tier`` whose start is within ``[since, until]``, of some nodes (default: every rolled node),
        one block per node and block period, checked (a rejected record is counted, deleted and left out)."""
        names = sorted(nodes) if nodes is not None else self.rolled_nodes()
        # Blocks are counted back from the end (within the retention): an ``until`` far in the future would
        # count them back from there and find none. No row starts later than now plus the clock skew allowed.
        now = time.time()
        end = now if until is None else min(until, now + self.max_clock_skew)
        starts = block_starts(tier, since, end)
        if not names or not starts:
            return []
        out = []
        for node, start, record in self._read_blocks(tier, starts, names):
            block = self._checked_block(node, tier, start, record)
            if block is not None:
                block = block.between(since, until)
                if len(block):
                    out.append(block)
        return out

    def _checked_block(self, node: str, tier: Tier, start: float, record: bytes) -> Block | None:
        try:
            return rollup_codec.decode(record, node, tier, start)
        except SchemaError as exc:
            self.rejections.add(KIND, node[:64], str(exc))
            self._drop_block(node, tier, start, record)
            return None

    def _load_block(self, node: str, tier: Tier, start: float) -> Block | None:
        """The block a writer continues: what the store holds (None: nothing, or a record rejected)."""
        found = self._read_blocks(tier, [start], [node])
        return self._checked_block(node, tier, start, found[0][2]) if found else None
