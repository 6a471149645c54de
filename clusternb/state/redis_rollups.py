"""The Redis side of rollups: where their records live and how they are written, read and pruned.

Kept apart from :mod:`clusternb.state.redis` (raw samples, the registry, liveness) because it is another concern
with its own keys (``roll:<tier>:<node>`` hashes and the ``rolled`` registry; the layout and the write script
are in :mod:`clusternb.state.redis_scripts`). Folding, encoding, validation and counting are the shared part,
:class:`~clusternb.state.rolling.Rolling`; this is only the bytes.

Costs: a node writes two blocks a minute (one script call each, a few KB); a read is one round trip for the
registry (when no nodes are given) and one pipeline of HMGETs, one per node, of exactly the blocks the range
needs.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from typing import Any, cast

from clusternb.redisio.errors import Refused
from clusternb.redisio.link import RedisLink
from clusternb.redisio.scripts import LinkScript
from clusternb.state.redis_scripts import PREFIX, PRUNE_FIELD, PUT_BLOCK
from clusternb.state.rolling import KIND, Rolling
from clusternb.state.rollup import TIERS, Block, Tier

#: Most nodes the ``rolled`` registry keeps (the most recently rolled ones stay).
MAX_ROLLED_NODES = 100_000
_LONGEST = max(t.retention for t in TIERS)


class RedisRolling(Rolling):
    """The rollup bytes of :class:`~clusternb.state.redis.RedisStateStore`, through its ``link``."""

    link: RedisLink
    prefix = PREFIX

    def _rollup_scripts(self) -> None:
        self._k_rolled = self.prefix + "rolled"
        self._put_block = LinkScript(self.link, PUT_BLOCK)
        self._prune_field = LinkScript(self.link, PRUNE_FIELD)

    def roll_key(self, tier: Tier, node: str) -> str:
        return f"{self.prefix}roll:{tier.name}:{node}"

    def _keep_blocks(self, records: Sequence[tuple[Block, bytes]]) -> None:
        for block, record in records:
            tier = block.tier
            self._put_block(
                (self.roll_key(tier, block.node), self._k_rolled),
                (
                    _field(block.start),
                    record,
                    repr(tier.retention),
                    math.ceil(tier.retention + tier.block),
                    int(tier.retention // tier.block) + 2,
                    block.node,
                    repr(_LONGEST),
                    MAX_ROLLED_NODES,
                    math.ceil(_LONGEST + tier.block),
                    repr(self.max_clock_skew),
                ),
            )

    def _read_blocks(self, tier: Tier, starts: Sequence[float], nodes: Sequence[str]) -> list[tuple[str, float, bytes]]:
        fields = [_field(s) for s in starts]

        def read(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for node in nodes:
                pipe.hmget(self.roll_key(tier, node), fields)
            return cast(list[Any], pipe.execute(raise_on_error=False))

        out: list[tuple[str, float, bytes]] = []
        for node, records in zip(nodes, self.link.call(read), strict=True):
            if isinstance(records, Exception):  # WRONGTYPE: another program's key under our name
                self.rejections.add(KIND, node[:64], f"rollup key unreadable: {records}")
                continue
            out.extend((node, s, r) for s, r in zip(starts, records, strict=True) if r is not None)
        return out

    def _drop_block(self, node: str, tier: Tier, start: float, record: bytes) -> None:
        key = self.roll_key(tier, node)
        self.link.attempt(functools.partial(_prune, self._prune_field, key, _field(start), record))

    def rolled_nodes(self) -> list[str]:
        try:
            members = self.link.call(self._read_rolled)
        except Refused as exc:
            self.rejections.add(KIND, "(key)", f"key unreadable: {exc.reason}")
            return []
        return sorted(m.decode("utf-8", "replace") for m in members)

    def _read_rolled(self, client: Any) -> Any:
        """The registry's nodes, newest first, at most :data:`MAX_ROLLED_NODES`, none later than this host's
        clock plus the skew: what a stray or hostile registry holds beyond that is never read (the writers'
        script trims the old end)."""
        high = repr(time.time() + self.max_clock_skew)
        return client.zrevrangebyscore(self._k_rolled, high, "-inf", start=0, num=MAX_ROLLED_NODES)


def _field(start: float) -> str:
    """A block start as its hash field: whole seconds (every tier's blocks start on a whole second)."""
    return str(int(start))


def _prune(script: LinkScript, key: str, field: str, record: bytes, client: Any) -> Any:
    return script.run_on(client, (key,), (field, record))
