"""Pausing the cyclic garbage collector while a burst of objects that cannot form cycles is built.

Decoding 10,000 snapshot records allocates some 30,000 container objects (records, their label dicts, the
pairs the store keeps). The collector counts allocations, not garbage: such a burst triggers dozens of
young collections and, once enough objects have survived, a full collection over everything the process
holds, pandas included. On this project's CI machine that was 45-90 ms of a 150-230 ms ``workers()`` over
10,000 nodes that had all published since the last read. The objects built here hold no cycles, so nothing
is lost by collecting after the burst instead of during it (Mercurial's ``util.nogc`` does the same).

The switch is process-wide: another thread running meanwhile also runs without collections for those
few milliseconds, which delays a collection and changes nothing else. Nested or concurrent uses are safe:
only the outermost use that found the collector on turns it back on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with the cyclic collector off (if it was on), and turn it back on after."""
    was_on = gc.isenabled()
    if was_on:
        gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
