"""What measuring Jupyter kernels adds to each sample: ``KernelMeter.measure()`` over N real kernels (issue 16).

    python benchmarks/bench_kernels.py [--kernels 50] [--runs 200] [--slow-runs 40]

Starts N real ipykernels (``jupyter_client.KernelManager``, the python3 spec); every 10th starts a child
process through a ``BlockingKernelClient``, so some trees have more than one process. A server runs
``KernelMeter.measure(infos)`` in its sampler thread after each host sample; that call is timed here (after one
warm-up), beside its parts and the alternatives, all in the same run, in alternating rounds so machine noise
hits every case alike:

- ``_children_of()``: the one parent map per sample that every kernel's tree is read from;
- the floor: ``memory_full_info()`` alone on every process of every tree (the kernel walks each process's page
  tables for ``smaps_rollup``; PSS and USS cost that, and it is most of the time);
- a naive loop: per kernel ``Process(pid).children(recursive=True)``, then ``memory_full_info()`` and
  ``cpu_percent()`` per process (what a straightforward implementation does; ``children`` reads every process
  of the host, once per kernel);
- jupyter-resource-usage's per-kernel path: ``KernelUsageHandler.get`` (``jupyter_resource_usage/api.py``) sends
  a ``usage_request`` on the kernel's control channel, and ipykernel's ``Kernel.usage_request``
  (``ipykernel/kernelbase.py``) answers it with psutil inside the kernel. Both are measured: the psutil calls of
  ``usage_request`` reproduced call for call from outside on each kernel pid (with its cache of Process objects),
  and the real round trip, one kernel after another;
- jupyter-resource-usage's ``ApiHandler.get`` (``/api/metrics/v1``) psutil calls on this process's whole tree,
  which holds every kernel: once per request, not per kernel, and with no per-kernel split;
- ``encode_report()`` of the ``KernelReport`` a server publishes, and its size in bytes.

Prints Markdown tables and a PASS/FAIL line against the target (under 1 ms per kernel per sample, median);
exits 1 on FAIL. Every kernel is shut down on the way out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
import zmq
from jupyter_client import BlockingKernelClient, KernelManager

from benchmarks._util import Result, fmt_time, summarize, table
from clusternb.kernel_usage import measure
from clusternb.kernel_usage.measure import KernelInfo, KernelMeter
from clusternb.kernel_usage.record import KernelReport, encode_report

TARGET_S = 1e-3  # per kernel per sample (issue 16)
CHILD_EVERY = 10
# A child that outlives nothing: it sleeps, and is killed with its kernel's process group (and by pid, below).
CHILD_CODE = (
    "import subprocess, sys\n"
    "_child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'], stderr=subprocess.DEVNULL)"
)


class Kernels:
    """N started kernels with a client each (control, shell and iopub; no heartbeat thread to add noise)."""

    def __init__(self) -> None:
        self.managers: list[KernelManager] = []
        self.clients: list[BlockingKernelClient] = []
        self.extra_pids: list[int] = []
        # The kernels' stderr (each warns about TCP without encryption): kept out of the tables, kept for a failure.
        self.log = tempfile.NamedTemporaryFile(prefix="bench_kernels-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self, n: int, timeout: float = 180.0) -> None:
        for _ in range(n):
            self._launch()
        for i in range(n):
            self.clients.append(self._ready(i, timeout))
            if i % CHILD_EVERY == 0:
                reply = self.clients[i].execute_interactive(CHILD_CODE, timeout=60, output_hook=lambda _msg: None)
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"kernel {i}: starting a child failed: {reply['content']}")
        for pid in self.pids():
            self.extra_pids += [p.pid for p in psutil.Process(pid).children(recursive=True)]

    def _launch(self, i: int | None = None) -> None:
        """Start a kernel, as a new one or in place of kernel ``i``; listed before it starts, so that a
        half-started kernel is shut down too."""
        km = KernelManager(kernel_name="python3")
        if i is None:
            self.managers.append(km)
        else:
            self.managers[i] = km
        km.start_kernel(stderr=self.log)

    def _ready(self, i: int, timeout: float, tries: int = 3) -> BlockingKernelClient:
        """Kernel ``i``'s client once it answers; a kernel that died starting (two processes on this busy host
        can race for a free port) is replaced by a new one, up to ``tries`` times."""
        for attempt in range(tries):
            km = self.managers[i]
            kc = km.client()
            kc.start_channels(hb=False)
            # A send to a dead kernel's socket can block for ever: time it out and let is_alive() decide.
            kc.shell_channel.socket.setsockopt(zmq.SNDTIMEO, 5000)
            try:
                if km.is_alive():
                    kc.wait_for_ready(timeout=timeout)
                    return kc
            except (RuntimeError, zmq.Again):
                if km.is_alive():
                    raise
            kc.stop_channels()
            print(f"kernel {i} died while starting (attempt {attempt + 1}, see {self.log.name}); a new one",
                  file=sys.stderr)  # fmt: skip
            with contextlib.suppress(Exception):
                km.shutdown_kernel(now=True)
            self._launch(i)
        raise RuntimeError(f"kernel {i} died while starting, {tries} times: see {self.log.name}")

    def pids(self) -> list[int]:
        return [km.provisioner.pid for km in self.managers]  # type: ignore[union-attr]

    def infos(self) -> list[KernelInfo]:
        now = time.time()
        return [
            KernelInfo(km.kernel_id or f"k{i}", "python3", "idle", now, 1, km.provisioner.pid, f"bench/nb{i:03d}.ipynb")  # type: ignore[union-attr]
            for i, km in enumerate(self.managers)
        ]

    def shutdown(self) -> None:
        for kc in self.clients:
            try:
                kc.stop_channels()
            except Exception as exc:  # keep going: every kernel must go
                print(f"warning: stop_channels: {exc}", file=sys.stderr)
        for km in self.managers:
            try:
                if km.has_kernel:
                    km.shutdown_kernel(now=True)
            except Exception as exc:
                print(f"warning: shutdown_kernel: {exc}", file=sys.stderr)
        for pid in self.extra_pids:  # children, should the process-group kill have missed one
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        self.log.close()


def smaps_floor(pids: list[int]) -> None:
    """``memory_full_info()`` alone (``/proc/<pid>/smaps_rollup``: PSS and USS) on every kernel process."""
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).memory_full_info()


def naive(pids: list[int]) -> None:
    """Per kernel: its tree from ``children(recursive=True)``, memory and CPU per process, fresh objects."""
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            try:
                proc.memory_full_info()
                proc.cpu_percent()
            except psutil.Error:
                pass


def _metric(process: psutil.Process, name: str, attribute: str | None = None) -> float:
    """ipykernel's ``Kernel.get_process_metric_value``: a failed read counts 0."""
    try:
        value = getattr(process, name)()
        return getattr(value, attribute) if attribute is not None else value
    except BaseException:
        return 0


def resource_usage_per_kernel(pids: list[int], caches: dict[int, dict[int, psutil.Process]]) -> None:
    """ipykernel ``Kernel.usage_request``'s psutil calls (what jupyter-resource-usage's KernelUsageHandler asks
    each kernel for), run from outside on each kernel pid, each kernel keeping its Process cache as the kernel
    does."""
    for pid in pids:
        current = psutil.Process(pid)
        all_processes = [current, *current.children(recursive=True)]
        cache = caches.get(pid, {})
        caches[pid] = cache = {p.pid: cache.get(p.pid, p) for p in all_processes}
        sum(_metric(p, "cpu_percent") for p in cache.values())
        kind = "pss" if hasattr(current.memory_full_info(), "pss") else "rss"
        sum(_metric(p, "memory_full_info", kind) for p in cache.values())
        psutil.cpu_percent()
        psutil.cpu_count(logical=True)
        dict(psutil.virtual_memory()._asdict())


def resource_usage_server(cache: dict[int, psutil.Process]) -> None:
    """jupyter-resource-usage ``ApiHandler.get``'s psutil calls: this process and all its descendants, once."""
    cur = psutil.Process()
    all_processes = [cur, *cur.children(recursive=True)]
    cached = [cache.get(p.pid, p) for p in all_processes]
    cache.clear()
    cache.update((p.pid, p) for p in cached)
    for p in all_processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            p.memory_full_info()
    psutil.cpu_count()
    sum(_metric(p, "cpu_percent") for p in cached)


def usage_round_trip(clients: list[BlockingKernelClient], timeout: float = 10.0) -> None:
    """The real per-kernel request of jupyter-resource-usage: usage_request on the control channel, one kernel
    after the other, each reply awaited."""
    for kc in clients:
        msg = kc.session.msg("usage_request", {})
        kc.control_channel.send(msg)
        while True:
            reply = kc.control_channel.get_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                break


def interleaved(cases: dict[str, tuple[Callable[[], object], int]], rounds: int = 10) -> list[Result]:
    """Each case (function, runs) once as warm-up, then timed in alternating rounds."""
    samples: dict[str, list[int]] = {name: [] for name in cases}
    for fn, _ in cases.values():
        fn()
    clock = time.perf_counter_ns
    for r in range(rounds):
        for name, (fn, runs) in cases.items():
            share = runs // rounds + (1 if r < runs % rounds else 0)
            for _ in range(share):
                start = clock()
                fn()
                samples[name].append(clock() - start)
    return [summarize(name, s) for name, s in samples.items()]


def run(kernels: Kernels, runs: int, slow_runs: int) -> tuple[list[Result], int]:
    n = len(kernels.managers)
    infos, pids = kernels.infos(), kernels.pids()
    tree_pids = pids + kernels.extra_pids
    meter = KernelMeter()
    caches: dict[int, dict[int, psutil.Process]] = {}
    server_cache: dict[int, psutil.Process] = {}
    stats = meter.measure(infos)
    report = KernelReport(node="node-0001", server="http://node-0001:8888/", time=time.time(), interval_s=2.0,
                          kernels=stats)  # fmt: skip
    cases = {
        f"KernelMeter.measure(), {n} kernels": (lambda: meter.measure(infos), runs),
        "  part: _children_of() (once per sample)": (measure._children_of, runs),
        f"  part: encode_report(), {n} kernels": (lambda: encode_report(report), runs),
        "  floor: memory_full_info() alone, every kernel process": (lambda: smaps_floor(tree_pids), runs),
        "naive: children(recursive) + memory_full_info + cpu_percent per kernel": (lambda: naive(pids), slow_runs),
        "jupyter-resource-usage per kernel: usage_request's psutil calls": (
            lambda: resource_usage_per_kernel(pids, caches),
            slow_runs,
        ),
        "jupyter-resource-usage per kernel: usage_request round trips": (
            lambda: usage_round_trip(kernels.clients),
            slow_runs,
        ),
        "jupyter-resource-usage ApiHandler.get psutil calls (whole server tree)": (
            lambda: resource_usage_server(server_cache),
            slow_runs,
        ),
    }
    results = interleaved(cases)
    for r in results:
        if "once per sample" not in r.name and "ApiHandler" not in r.name:
            r.note = f"{fmt_time(r.median_s / n)} per kernel (p99 {fmt_time(r.p99_s / n)})"
    return results, len(encode_report(report))


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", type=int, default=50, help="kernels to start (default 50)")
    parser.add_argument("--runs", type=int, default=200, help="timed calls of KernelMeter.measure (default 200)")
    parser.add_argument("--slow-runs", type=int, default=40, help="timed calls of the per-kernel loops (default 40)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM unwinds like Ctrl-C, through the finally below
    kernels = Kernels()
    try:
        started = time.perf_counter()
        kernels.start(args.kernels)
        startup = time.perf_counter() - started
        results, size = run(kernels, args.runs, args.slow_runs)
        trees = sum(len(psutil.Process(p).children(recursive=True)) for p in kernels.pids())
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave kernels behind
        kernels.shutdown()
        signal.signal(signal.SIGINT, previous)
    Path(kernels.log.name).unlink()  # all went well: the kernels' warnings are of no interest
    n = args.kernels
    host = f"{len(psutil.pids())} processes on the host, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    print(f"{n} kernels started in {startup:.1f} s ({trees} child processes under them); {host}")
    print()
    print(table(f"Cost per sample of measuring {n} kernels", results))
    print()
    print(f"KernelReport for {n} kernels, encoded: {size} bytes ({size / n:.0f} bytes per kernel)")
    print()
    median = results[0].median_s / n
    ok = median < TARGET_S
    print(f"{'PASS' if ok else 'FAIL'}  under 1 ms per kernel per sample (median {median * 1e6:.0f} µs)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
