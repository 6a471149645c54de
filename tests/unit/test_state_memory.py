"""The memory store stays flat however long it runs (the behaviour shared with the Redis store is tested
for both in tests/integration/test_state_stores.py)."""

from __future__ import annotations

import tracemalloc

from clusternb.state.memory import MemoryStateStore
from tests.helpers import make_snapshot


def test_ten_thousand_samples_stay_within_the_window() -> None:
    store = MemoryStateStore(window=600.0)
    t0 = 1_700_000_000.0
    tracemalloc.start(10)
    traced = []
    # Rollups grow on purpose (a week of minutes, up to an hour of them in the writer's open block; bounded in
    # tests/integration/test_rollups.py): what they allocate is left out of the count.
    # (Nor what taking the snapshot allocates: its filters compile their patterns.)
    skipped = ("*/state/rollup*.py", "*/state/rolling.py", tracemalloc.__file__, "*/fnmatch.py")
    raw_only = [tracemalloc.Filter(False, pattern, all_frames=True) for pattern in skipped]
    for i in range(10_000):
        store.put(make_snapshot(time=t0 + i))
        if i in (4_999, 9_999):  # both well past the window: the store should hold the same amount
            traces = tracemalloc.take_snapshot().filter_traces(raw_only).traces
            traced.append(sum(trace.size for trace in traces))
    tracemalloc.stop()
    assert store.sample_count() == 601  # samples from t-600 s to t, inclusive
    history = store.history(since=0)
    assert min(s.time for s in history) == t0 + 10_000 - 1 - 600
    grown = traced[1] - traced[0]
    assert grown < 10_000, f"store grew by {grown} bytes over its last 5,000 samples"
