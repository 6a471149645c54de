"""Cost of one local sample, and of workers()/metrics() on the memory store (no cache: the raw work).

    python benchmarks/bench_local.py

Prints Markdown tables. The psutil floor is the same reads done with bare psutil calls, so the ratio shows
what clusternb adds on top of the kernel reads it cannot avoid.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._util import measure, table
from clusternb import frames
from clusternb.config import load_config
from clusternb.sources.local import LocalSampler
from clusternb.state.memory import MemoryStateStore
from tests.helpers import make_snapshot


def bare_psutil() -> None:
    psutil.cpu_times()
    psutil.disk_io_counters()
    psutil.net_io_counters(pernic=True)
    psutil.virtual_memory()
    psutil.swap_memory()
    psutil.disk_usage("/")
    os.getloadavg()


def main() -> None:
    sampler = LocalSampler()
    sample = [
        measure("bare psutil reads (floor)", bare_psutil, runs=2000),
        measure("LocalSampler.sample()", sampler.sample, runs=2000, note="+ cgroup files, snapshot object"),
    ]
    print(table("One local sample", sample, baseline="bare psutil reads (floor)"))
    print()

    settings = load_config()
    now = time.time()
    results = []
    for nodes, hours in ((1, 1), (100, 1)):
        store = MemoryStateStore(window=3600 * hours)
        interval = 2.0 if nodes == 1 else 10.0
        steps = int(3600 * hours / interval)
        for step in range(steps):
            for n in range(nodes):
                store.put(make_snapshot(f"node-{n:04d}", time=now - (steps - step) * interval, interval_s=interval))
        runs = 200 if nodes == 1 else 30
        results.append(
            measure(
                f"workers(), {nodes} node(s)",
                lambda s=store: frames.workers_frame(s.latest(), now, settings.thresholds, s.departed()),
                runs=runs,
                warmup=5,
            )
        )
        results.append(
            measure(
                f"metrics('15m'), {nodes} node(s) x {int(900 / interval)} samples",
                lambda s=store: frames.metrics_frame(s.history(now - 900), frames.METRIC_FIELDS),
                runs=runs,
                warmup=5,
            )
        )
    print(table("Queries on the memory store, uncached", results))


if __name__ == "__main__":
    main()
