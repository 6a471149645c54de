"""Measuring kernels: each kernel's process tree (the kernel and its descendants) through psutil, and its GPU
memory through NVML's per-process accounting.

Called from the host's one sampler thread, once per sample, for every kernel of the server at once, so the
cost that grows with the number of kernels stays small:

- one parent map per sample (every process's parent, read once), from which each kernel's descendants follow,
  instead of ``Process.children(recursive=True)`` per kernel, which reads every process of the host each time;
- ``psutil.Process`` objects are kept from one sample to the next (keyed by pid and start time, so a reused
  pid is a new process): ``cpu_percent()`` measures since the previous call on the same object;
- RSS on every sample; PSS and USS from ``memory_full_info()`` (``/proc/<pid>/smaps_rollup``, the costly read)
  only when RSS moved or every :data:`FULL_EVERY` samples (see there); a process this user may not read gives
  RSS only;
- one NVML call per GPU per sample for every process's GPU memory.

Everything a kernel's processes report is summed: CPU as a percent of the whole node (the convention of the
node's ``cpu_percent``), memory, threads and GPU memory per device.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import psutil

from clusternb.kernel_usage.record import GPUUse, KernelStat

#: Pid -> {GPU index: bytes} for every process using a GPU (empty without NVML).
GpuByPid = Callable[[], Mapping[int, Mapping[int, int]]]


@dataclass(frozen=True, slots=True)
class KernelInfo:
    """What the server knows of one kernel (read on its event loop): everything but the measurements."""

    kernel_id: str
    kernel_name: str
    execution_state: str
    last_activity: float
    connections: int
    pid: int | None
    path: str = ""


@dataclass(slots=True)
class _Tree:
    """Sums over one kernel's processes."""

    processes: int = 0
    cpu: float = 0.0
    rss: int = 0
    pss: int | None = 0
    uss: int | None = 0
    threads: int = 0


class KernelMeter:
    """Measures every kernel of a server in one pass; keeps its ``psutil.Process`` objects between passes."""

    def __init__(self, gpu_by_pid: GpuByPid | None = None, owner: str | None = None) -> None:
        """``owner``: who this server's own processes belong to (:func:`current_user`, read once)."""
        self._owner = current_user() if owner is None else owner
        self._procs: dict[tuple[int, float], _Kept] = {}
        self._gpu_by_pid = gpu_by_pid
        self._cpus = psutil.cpu_count() or 1

    def measure(self, kernels: Sequence[KernelInfo]) -> tuple[KernelStat, ...]:
        """A record per kernel, measured now (a kernel whose process is gone or unknown has no measurements)."""
        if not kernels:
            self._procs.clear()
            return ()
        children = _children_of()
        gpu = self._gpu_by_pid() if self._gpu_by_pid is not None else {}
        seen: dict[tuple[int, float], _Kept] = {}
        measured = (self._one(info, children, gpu, seen) for info in kernels)
        out = tuple(k for k in measured if k is not None)
        self._procs = seen  # processes no kernel has any more are forgotten
        return out

    def _one(
        self,
        info: KernelInfo,
        children: Mapping[int, list[int]],
        gpu: Mapping[int, Mapping[int, int]],
        seen: dict[tuple[int, float], _Kept],
    ) -> KernelStat | None:
        """The kernel measured; None when its process has exited (shut down since the server was last asked:
        the kernel is gone from this report, not listed without numbers until the next directory)."""
        base = KernelStat(
            kernel_id=info.kernel_id, path=info.path, kernel_name=info.kernel_name,
            execution_state=info.execution_state, last_activity=info.last_activity, connections=info.connections,
            pid=info.pid,
        )  # fmt: skip
        if info.pid is None:  # a kernel on a remote provisioner: listed, not measured
            return base
        pids = _tree(info.pid, children)
        tree, user = _Tree(), ""
        for pid in pids:
            kept = self._process(pid, seen)
            if kept is None:
                continue
            user = user or _user(kept.proc, self._owner)
            _add(tree, kept)
        if not tree.processes:
            return None
        devices: dict[int, int] = defaultdict(int)
        for pid in pids:
            for index, used in gpu.get(pid, {}).items():
                devices[index] += used
        return KernelStat(
            kernel_id=info.kernel_id, path=info.path, kernel_name=info.kernel_name,
            execution_state=info.execution_state, last_activity=info.last_activity, connections=info.connections,
            user=user, pid=info.pid, processes=tree.processes, cpu_percent=round(min(tree.cpu / self._cpus, 100.0), 2),
            rss_bytes=tree.rss, pss_bytes=tree.pss, uss_bytes=tree.uss, threads=tree.threads,
            gpu_mem_used_bytes=sum(devices.values()) if self._gpu_by_pid is not None else None,
            gpus=tuple(GPUUse(index=i, mem_used_bytes=b) for i, b in sorted(devices.items())),
        )  # fmt: skip

    def _process(self, pid: int, seen: dict[tuple[int, float], _Kept]) -> _Kept | None:
        """The kept process for ``pid`` (a new one for a new process); None if it is gone."""
        try:
            proc = psutil.Process(pid)
            key = (pid, proc.create_time())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        kept = self._procs.get(key)
        if kept is None:
            kept = _Kept(proc)
            proc.cpu_percent(None)  # the first reading is the baseline; this sample counts it as 0
        seen[key] = kept
        return kept


#: PSS and USS come from ``/proc/<pid>/smaps_rollup``, which costs the kernel a walk of the process's page
#: tables (about 0.3 ms idle, over 1 ms on a loaded host, for a kernel of a few hundred MiB): most of what
#: measuring a kernel costs. They are read again when RSS (one cheap read of ``/proc/<pid>/statm``) moved by
#: more than :data:`RSS_MOVE` of itself, and every :data:`FULL_EVERY` samples in any case: an allocation or a
#: release shows at once, and a slow drift (pages becoming shared) within that many samples.
RSS_MOVE: Final = 0.02
FULL_EVERY: Final = 10


@dataclass(slots=True)
class _Kept:
    """A process kept between samples: its psutil object (CPU is measured since the previous call on it) and
    its last PSS and USS with the RSS they were read at."""

    proc: psutil.Process
    pss: int | None = None
    uss: int | None = None
    rss_at: int = -1
    age: int = 0

    def memory(self, rss: int) -> tuple[int | None, int | None]:
        """PSS and USS, read again only when due (see :data:`FULL_EVERY`)."""
        self.age += 1
        if self.rss_at < 0 or self.age >= FULL_EVERY or abs(rss - self.rss_at) > RSS_MOVE * self.rss_at:
            try:
                full = self.proc.memory_full_info()
                self.pss, self.uss = getattr(full, "pss", None), full.uss
            except psutil.AccessDenied:  # another user's process: RSS is public, PSS and USS are not
                self.pss = self.uss = None
            self.rss_at, self.age = rss, 0
        return self.pss, self.uss


def _add(tree: _Tree, kept: _Kept) -> None:
    """Add one process's CPU, memory and threads to its kernel's sums (a process that just exited adds none)."""
    proc = kept.proc
    try:
        with proc.oneshot():
            cpu = proc.cpu_percent(None)
            threads = proc.num_threads()
            rss = proc.memory_info().rss
            pss, uss = kept.memory(rss)
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return
    tree.processes += 1
    tree.cpu += cpu
    tree.rss += rss
    tree.pss = None if tree.pss is None or pss is None else tree.pss + pss
    tree.uss = None if tree.uss is None or uss is None else tree.uss + uss
    tree.threads += threads


def _user(proc: psutil.Process, owner: str) -> str:
    """``owner`` for a process of this server's own Unix user; otherwise the process's user."""
    try:
        if proc.uids().real == os.getuid():
            return owner
        return proc.username()
    except (psutil.Error, KeyError):  # a uid without a name
        try:
            return str(proc.uids().real)
        except psutil.Error:
            return ""


def _children_of() -> dict[int, list[int]]:
    """Every process's children, from one read of every process's parent."""
    children: dict[int, list[int]] = defaultdict(list)
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid is not None:
            children[ppid].append(proc.pid)
    return children


def _tree(root: int, children: Mapping[int, Iterable[int]]) -> list[int]:
    """``root`` and all its descendants, each once (a pid loop cannot make it run forever)."""
    out, todo, seen = [], [root], {root}
    while todo:
        pid = todo.pop()
        out.append(pid)
        for child in children.get(pid, ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return out


def current_user() -> str:
    """Who runs this process, as kernel records name their owners: the JupyterHub user where a hub started it
    (on Kubernetes every user's pod runs as the same Unix user, ``jovyan``), else the Unix user."""
    hub = os.environ.get("JUPYTERHUB_USER", "").strip()
    if hub:
        return f"hub:{hub}"[:256]
    try:
        return psutil.Process(os.getpid()).username()
    except (psutil.Error, KeyError):
        return str(os.getuid())
