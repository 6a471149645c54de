"""Where snapshots live: one interface, a memory store (embedded mode) and a Redis store (cluster mode)."""

from clusternb.state.base import StateStore
from clusternb.state.memory import MemoryStateStore

__all__ = ["MemoryStateStore", "StateStore"]
