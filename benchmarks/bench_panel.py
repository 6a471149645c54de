"""What an open panel costs the kernel when nothing changes: comm messages sent and CPU used by the poller.

    python benchmarks/bench_panel.py [--seconds 60] [--nodes 20]

A full ``clusternb.panel()`` (header, workers table, three FigureWidgets, alerts) runs for ``--seconds`` on the
real poller thread at its default 3 s interval, over a store the script controls (``--nodes`` nodes with ten
minutes of history, no local sampler), with ipywidgets' comm replaced by one that counts messages, the way
ipywidgets' own tests do. Targets: zero messages, and under 1 % of one core for the poller thread (issue 17
item 4: 0.3 %). A last table shows what one tick costs when a node does send a new sample, in wall time and in
the ticking thread's CPU time (the target: under 15 ms of CPU at 100 nodes, the median of the ticks).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import comm

from clusternb.config import load_config
from clusternb.queries import Client
from clusternb.state.memory import MemoryStateStore
from tests.comms import RecordingComm, clear, sent, sent_bytes
from tests.helpers import make_snapshot


def seeded_client(nodes: int, history_s: float = 600.0, step: float = 2.0) -> Client:
    settings = load_config(stale_after=86_400, offline_after=172_800)  # nodes must not go stale mid-run
    client = Client(settings, store=MemoryStateStore(), sample_local=False)
    now = time.time()
    for t in range(int(history_s / step)):
        for n in range(nodes):
            client.store.put(
                make_snapshot(f"node-{n:02d}", time=now - history_s + t * step, cpu_percent=float((n * 7 + t) % 100))
            )
    return client


def thread_cpu(thread_ident: int) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread_ident))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--nodes", type=int, default=20)
    args = parser.parse_args()

    comm.create_comm = RecordingComm  # type: ignore[assignment]  # before any widget exists
    from clusternb.widgets import poller as poller_module
    from clusternb.widgets.panel import panel
    from clusternb.widgets.poller import get_poller

    # Split the thread's CPU between the query layer (client.query: cache, recompute, hashing) and the panel.
    in_queries = [0.0, 0]
    run = poller_module.Query.run

    def timed_run(self: Any, client: Client, held: Any = None, holding: bool = False) -> Any:
        start = time.thread_time()
        try:
            return run(self, client, held, holding)
        finally:
            in_queries[0] += time.thread_time() - start
            in_queries[1] += 1

    poller_module.Query.run = timed_run  # type: ignore[method-assign]

    client = seeded_client(args.nodes)
    p = panel(client=client)  # default interval: 3 s
    poller = get_poller()
    thread = poller.thread
    assert thread is not None and thread.ident is not None
    first_paint = sent()
    clear()
    in_queries[:] = [0.0, 0]
    reused0 = poller.reused
    ticks0, cpu0, proc0, wall0 = poller.ticks, thread_cpu(thread.ident), time.process_time(), time.monotonic()
    time.sleep(args.seconds)
    wall = time.monotonic() - wall0
    cpu, proc, ticks = thread_cpu(thread.ident) - cpu0, time.process_time() - proc0, poller.ticks - ticks0
    idle_messages, idle_bytes = sent(), sent_bytes()
    reused = poller.reused - reused0
    query_cpu, queries_run = in_queries[0], in_queries[1] - reused  # each call is a run or a reuse
    renders = sum(s.renders for s in p.sections)

    # Contrast: ticks where one node sends a new sample (what a change costs, and that it is one batch).
    changed = []
    for i in range(5):
        client.store.put(make_snapshot("node-00", time=time.time(), cpu_percent=50.0 + i))
        before, start, start_cpu = sent(), time.perf_counter(), time.thread_time()
        report = poller.tick(force=True)
        tick_cpu = time.thread_time() - start_cpu
        changed.append((time.perf_counter() - start, tick_cpu, sent() - before, report.updated))
    p.close()
    client.close()

    cpu_pct = 100.0 * cpu / wall
    print(f"### Panel open {wall:.0f} s on unchanged data ({args.nodes} nodes, 10 min history, interval 3 s)\n")
    print("| figure | value |")
    print("|---|---:|")
    print(f"| comm messages at first paint | {first_paint} |")
    print(f"| poller ticks | {ticks} |")
    print(f"| comm messages after first paint | {idle_messages} ({idle_bytes} bytes) |")
    print(f"| section re-renders (hash changed, view compared, nothing sent) | {renders - len(p.sections)} |")
    print(f"| poller thread CPU | {cpu * 1e3:.0f} ms = {cpu_pct:.3f} % of a core |")
    print(f"| poller thread CPU per tick | {cpu / max(ticks, 1) * 1e3:.2f} ms |")
    print(f"| of which in client.query (query layer: cache, recompute, hashing) | {query_cpu / max(cpu, 1e-9):.0%} |")
    own = cpu - query_cpu
    print(f"| of which in the panel (poller, change checks, renders) | {own / max(ticks, 1) * 1e3:.2f} ms/tick |")
    print(f"| queries run / reused (the cache holding the same entry: no copy) | {queries_run} / {reused} |")
    print(f"| whole process CPU (includes the idle main thread) | {100.0 * proc / wall:.3f} % of a core |")
    print("\n### For contrast: a tick after one node sent a new sample\n")
    print("| tick | time | thread CPU | comm messages | sections sent |")
    print("|---:|---:|---:|---:|---:|")
    for i, (seconds, tick_cpu, messages, updated) in enumerate(changed, 1):
        print(f"| {i} | {seconds * 1e3:.1f} ms | {tick_cpu * 1e3:.1f} ms | {messages} | {updated} |")
    change_cpu = statistics.median(c[1] for c in changed) * 1e3
    print()
    print(f"{'PASS' if idle_messages == 0 else 'MISS'}: {idle_messages} comm messages on unchanged data (target 0)")
    print(f"{'PASS' if cpu_pct < 1.0 else 'MISS'}: poller thread used {cpu_pct:.3f} % of a core (target < 1 %)")
    print(f"{'PASS' if cpu_pct < 0.3 else 'MISS'}: at rest {cpu_pct:.3f} % of a core (issue 17 item 4 target < 0.3 %)")
    print(
        f"{'PASS' if change_cpu < 15.0 else 'MISS'}: a tick after one node changed at {args.nodes} nodes: "
        f"{change_cpu:.1f} ms of thread CPU, median of {len(changed)} (issue 17 item 4 target < 15 ms at 100 nodes)"
    )
    print(f"info: {100.0 * own / wall:.3f} % of a core outside client.query (the panel's own work)")
    if thread.is_alive():
        print("MISS: the poller thread outlived its panel")
    else:
        print("PASS: the poller thread stopped when the panel closed")


if __name__ == "__main__":
    main()
