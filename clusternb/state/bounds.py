"""How much history a state store keeps, and how far ahead of the clock a sample may claim to be.

These three numbers travel together: every store trims and validates by them, and they come from the
settings (``history_window``, ``history_max_samples``, ``max_clock_skew``) in one place,
:meth:`HistoryBounds.from_settings`, so a store built by the agent, a kernel or the server keeps the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from clusternb.config import ClusterNB


@dataclass(frozen=True, slots=True)
class HistoryBounds:
    """``window``: seconds of history kept before the newest sample of a node (and how long a silent node's
    keys live); ``max_samples``: the most samples kept per node, whatever the clocks do; ``max_clock_skew``:
    seconds a sample time may be ahead of this host's clock before the record is rejected (it would show its
    node online forever)."""

    window: float = 3600.0
    max_samples: int = 20_000
    max_clock_skew: float = 300.0

    @classmethod
    def from_settings(cls, settings: ClusterNB) -> HistoryBounds:
        """The bounds a :class:`~clusternb.config.ClusterNB` configuration describes."""
        return cls(
            window=settings.history_window,
            max_samples=settings.history_max_samples,
            max_clock_skew=settings.max_clock_skew,
        )
