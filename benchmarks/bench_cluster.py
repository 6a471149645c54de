"""Cluster-mode costs: workers() over 1,000 and 10,000 nodes held in Redis, and what an agent costs a node.

    python benchmarks/bench_cluster.py [--seconds 60] [--redis-cluster]

1. A local redis-server is filled with N synthetic nodes through RedisStateStore.put (as agents would), then
   ``Client.workers()`` is timed on a miss (cache invalidated before each call: fetch, build the frame,
   encode it into the cache; records unchanged since the previous read are not decoded again), on a hit
   (served from the Redis cache), and for 10,000 nodes on the miss after every node published anew (every
   record decoded; the p99 column shows the slowest of 5 runs).
2. Three processes run side by side for the same wall time at a 1 s interval: ``clusternb agent``
   publishing to Redis, a bare psutil loop doing the same kernel reads and nothing else, and Glances
   (``glances --stdout``, its lightest output). For each: CPU time (user+sys) and peak RSS (VmHWM).

With ``--redis-cluster`` both parts run against a real local Redis Cluster instead of one redis-server (six
redis-server processes, three masters and three replicas, from ``tests/redis_cluster.py``): the store, the
client and the agent are given the first node's URL and detect the cluster themselves, which the script
checks before timing anything, and after the agent comparison that the agent's records reached the cluster.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._util import Result, fmt_time, measure, summarize, table  # noqa: E402
from clusternb.config import load_config  # noqa: E402
from clusternb.queries import Client  # noqa: E402
from clusternb.state.redis import RedisStateStore  # noqa: E402
from tests.helpers import make_snapshot  # noqa: E402
from tests.redis_cluster import LocalRedisCluster  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

#: Either local Redis: both have ``url``, ``client()`` (whose FLUSHALL a cluster client sends to every master)
#: and ``stop()``.
AnyRedis = RedisServer | LocalRedisCluster

# Both measured processes write time.process_time() (nanosecond clock) to a file on SIGUSR1 and at exit:
# the kernel's tick counters move in 10 ms steps, too coarse for processes using ~1 ms a second.
MARKS = textwrap.dedent(
    """
    import atexit, signal, sys, time
    _marks = sys.argv.pop(1)
    def _mark(*_):
        with open(_marks, "a") as f:
            f.write(f"{time.process_time()}\\n")
    signal.signal(signal.SIGUSR1, _mark)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit through atexit (the agent sets its own)
    atexit.register(_mark)
    """
)
BARE_LOOP = MARKS + textwrap.dedent(
    """
    import os, psutil
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        psutil.cpu_times(); psutil.disk_io_counters(); psutil.net_io_counters(pernic=True)
        psutil.virtual_memory(); psutil.swap_memory(); psutil.disk_usage("/"); os.getloadavg()
        time.sleep(1.0)
    """
)
AGENT = MARKS + "from clusternb.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def bench_workers(server: AnyRedis, cluster: bool = False) -> list[Result]:
    results = []
    for nodes in (1_000, 10_000):
        server.client().flushall()
        store = RedisStateStore(server.url)
        publish_all(store, nodes)
        settings = load_config(redis_url=server.url, interval=3600)
        with Client(settings, sample_local=False) as client:
            assert len(client.workers()) == nodes
            if cluster:
                check_cluster_detected(store, client)

            def miss(c: Client = client) -> None:
                c.cache.backend.delete(c._key("workers", ()))  # one DEL: drop exactly this entry
                c.workers()

            runs = 30 if nodes == 1_000 else 10
            results.append(measure(f"workers(), {nodes:,} nodes, miss", miss, runs=runs, warmup=2))
            results.append(measure(f"workers(), {nodes:,} nodes, hit", client.workers, runs=runs * 3, warmup=2))
            if nodes == 10_000:
                results.append(after_every_node_published(client, store, nodes, runs=5))
        store.close()
    return results


def check_cluster_detected(store: RedisStateStore, client: Client) -> None:
    """Stop unless the store and the client both talk to the cluster as one (no silent fallback to memory)."""
    for name, link in (("RedisStateStore", getattr(store, "link", None)), ("Client", getattr(client, "link", None))):
        if link is None or link.cluster is not True:
            raise SystemExit(f"{name} did not detect the Redis Cluster (this version has no RedisLink cluster mode)")
        if not link.available:
            raise SystemExit(f"{name}'s link to the Redis Cluster is {link.health.state}: {link.health.last_error}")


def after_every_node_published(client: Client, store: RedisStateStore, nodes: int, runs: int) -> Result:
    """A miss as a dashboard meets it in a busy cluster: every node has published since the last read, so
    every record is new and decoded again (the plain miss above reuses the records decoded the time before)."""
    samples = []
    for _ in range(runs):
        publish_all(store, nodes)  # not timed: the agents' work
        start = time.perf_counter_ns()
        client.workers()
        samples.append(time.perf_counter_ns() - start)
    return summarize(f"workers(), {nodes:,} nodes, miss after every node published", samples)


_RNG = random.Random(2026)  # reproducible runs, different values at every call


def publish_all(store: RedisStateStore, nodes: int) -> None:
    """One fresh sample of each of ``nodes`` synthetic nodes (names node-00000..., 40 racks), as agents would.

    Every value varies from node to node and from call to call like a real cluster's (times spread over
    a second, loads, memory, rates, addresses): identical rows would flatter the cache, whose large entries
    are compressed.
    """
    now = time.time()
    for i in range(nodes):
        store.put(
            make_snapshot(
                f"node-{i:05d}",
                host=f"node-{i:05d}.cluster.example.org",
                ip=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}",
                time=now - _RNG.random(),
                interval_s=3600.0,
                labels={"rack": f"r{i % 40}"},
                cpu_percent=round(_RNG.uniform(0, 100), 2),
                load_1=_RNG.uniform(0, 16),
                load_5=_RNG.uniform(0, 16),
                load_15=_RNG.uniform(0, 16),
                mem_used_bytes=_RNG.randrange(2**34),
                mem_available_bytes=_RNG.randrange(2**34),
                swap_used_bytes=_RNG.randrange(2**30),
                disk_used_bytes=_RNG.randrange(2**36),
                disk_read_bps=_RNG.uniform(0, 1e8),
                disk_write_bps=_RNG.uniform(0, 1e8),
                net_rx_bps=_RNG.uniform(0, 1e9),
                net_tx_bps=_RNG.uniform(0, 1e9),
                uptime_s=_RNG.uniform(0, 1e7),
            )
        )


def check_agent_published(server: AnyRedis) -> None:
    """Stop unless the agent's node is in the cluster's state: an agent failing every publish costs less CPU."""
    store = RedisStateStore(server.url)
    try:
        names = [snap.node for snap in store.latest()]
    finally:
        store.close()
    if "bench" not in names:
        raise SystemExit(f"the agent published nothing to the Redis Cluster (nodes there: {names[:5]})")


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def bench_agents(server: AnyRedis, seconds: float, tmp: Path) -> list[tuple[str, float, int]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    marks = {"clusternb agent": tmp / "agent.marks", "bare psutil loop": tmp / "bare.marks"}
    agent_args = ["agent", "--redis", server.url, "--name", "bench", "--interval", "1"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs: dict[str, subprocess.Popen[bytes]] = {
        "clusternb agent": subprocess.Popen(
            [sys.executable, "-c", AGENT, str(marks["clusternb agent"]), *agent_args], env=env, **quiet
        ),
        "bare psutil loop": subprocess.Popen(
            [sys.executable, "-c", BARE_LOOP, str(marks["bare psutil loop"]), str(seconds + 30)], env=env, **quiet
        ),
    }
    glances = shutil.which("glances") or str(Path(sys.executable).parent / "glances")
    if Path(glances).exists():
        procs["glances --stdout"] = subprocess.Popen(
            [glances, "--stdout", "cpu.total,mem.percent,load", "-t", "1"], **quiet
        )
    time.sleep(5)  # let every process import and start its loop; measure the steady state only
    for name in marks:
        os.kill(procs[name].pid, signal.SIGUSR1)
    glances_start = psutil.Process(procs["glances --stdout"].pid).cpu_times() if "glances --stdout" in procs else None
    time.sleep(seconds)
    out = []
    peaks = {name: _peak_rss(p.pid) for name, p in procs.items()}
    if glances_start is not None:
        end = psutil.Process(procs["glances --stdout"].pid).cpu_times()
        cpu = (end.user - glances_start.user) + (end.system - glances_start.system)  # 10 ms ticks; it uses ~10x more
        out.append(("glances --stdout", cpu, peaks["glances --stdout"]))
    for proc in procs.values():
        proc.terminate()  # the agent and the loop write their exit mark
    for proc in procs.values():
        proc.wait(10)
    for name, path in marks.items():
        first, last = (float(x) for x in path.read_text().split()[:2])
        out.insert(0 if name == "clusternb agent" else 1, (name, last - first, peaks[name]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="wall time of the agent comparison")
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="run against a local Redis Cluster (3 masters, 3 replicas) instead of one redis-server",
    )
    args = parser.parse_args()
    server: AnyRedis = LocalRedisCluster().start() if args.redis_cluster else RedisServer().start()
    try:
        workers = bench_workers(server, cluster=args.redis_cluster)
        server.client().flushall()
        with tempfile.TemporaryDirectory() as tmp:
            agents = bench_agents(server, args.seconds, Path(tmp))
        if args.redis_cluster:
            check_agent_published(server)
    finally:
        server.stop()
    title, where = "workers() with nodes held in Redis (cache in Redis too)", ""
    if args.redis_cluster:
        title = "workers() with nodes held in a Redis Cluster (3 masters, 3 replicas; cache there too)"
        where = " on a Redis Cluster"
    print(table(title, workers))
    print()
    print(f"### One node's cost over {args.seconds:.0f} s at a 1 s interval{where} (same run, side by side)\n")
    print("| process | CPU time | CPU per sample | × bare psutil | peak RSS |\n|---|---:|---:|---:|---:|")
    bare = next(cpu for name, cpu, _ in agents if name == "bare psutil loop")
    for name, cpu, rss in agents:
        print(f"| {name} | {cpu:.2f} s | {fmt_time(cpu / args.seconds)} | {cpu / bare:.2f} | {rss / 2**20:.1f} MiB |")
    print()
    miss_10k = next(r for r in workers if r.name.startswith("workers(), 10,000 nodes, miss"))
    agent = next(cpu for name, cpu, _ in agents if name == "clusternb agent")
    print(
        f"{'PASS' if miss_10k.median_s <= 0.150 else 'MISS'}  10,000 nodes in <= 150 ms on a miss "
        f"(median {fmt_time(miss_10k.median_s)})"
    )
    busy = next(r for r in workers if r.name.endswith("after every node published"))
    print(
        f"{'PASS' if busy.median_s <= 0.150 else 'MISS'}  ... and on the miss after every node published "
        f"(median {fmt_time(busy.median_s)})"
    )
    print(
        f"{'PASS' if agent <= 2 * bare else 'MISS'}  agent within 2x of the bare psutil loop's CPU time "
        f"({agent / bare:.2f}x)"
    )


if __name__ == "__main__":
    main()
