"""The local host as a source of snapshots: psutil, cgroup limits and NVML, with state kept between samples.

Rates and CPU percent are computed from counter deltas between two calls of :meth:`LocalSampler.sample` on
the same object, never from psutil's module-level ``cpu_percent()`` state (which any other library in the
process could reset). Iterating processes is deliberately absent: it costs ~10 ms and belongs to no query.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import psutil

from clusternb.arguments import ConfigError
from clusternb.config import ClusterNB
from clusternb.model import NodeSnapshot
from clusternb.sources.cgroups import LimitsReader
from clusternb.sources.gpu import NvmlReader


class _Counters(NamedTuple):
    mono: float
    cpu_busy: float
    cpu_total: float
    disk_read: int
    disk_write: int
    net_rx: int
    net_tx: int


@dataclass(frozen=True, slots=True)
class SamplerOptions:
    """What a sampler measures and how its snapshots name it.

    ``node``: the node's name (None: the host name). ``disk_path``: the filesystem whose size and use are
    reported. ``labels``: carried by every snapshot. ``interval``: the seconds between samples the snapshots
    announce. ``net_exclude``: network interfaces left out of the rates. ``source``: who sampled (``local``,
    ``agent``).
    """

    node: str | None = None
    disk_path: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)
    interval: float = 2.0
    net_exclude: Collection[str] = ("lo",)
    source: str = "local"

    @classmethod
    def from_settings(cls, settings: ClusterNB, source: str = "local") -> SamplerOptions:
        """The options a configuration describes (node name, disk path, labels, interval, excluded NICs)."""
        return cls(
            node=settings.node_name,
            disk_path=settings.disk_path,
            labels=settings.labels,
            interval=settings.interval,
            net_exclude=settings.net_exclude,
            source=source,
        )


class LocalSampler:
    """Samples this host. Keep one per process: its value lies in the state it carries between samples.

    ``options``: :class:`SamplerOptions` (default: its defaults). ``gpu`` and ``cgroup_root``: where GPUs and
    cgroup limits are read (default: NVML, ``/sys/fs/cgroup``).
    """

    def __init__(
        self,
        options: SamplerOptions | None = None,
        *,
        gpu: NvmlReader | None = None,
        cgroup_root: Path = Path("/sys/fs/cgroup"),
    ) -> None:
        options = options if options is not None else SamplerOptions()
        if not os.path.exists(options.disk_path):
            raise ConfigError(f"disk_path {options.disk_path!r} does not exist")
        self.host = socket.gethostname()
        self.node = options.node or self.host
        self.disk_path = options.disk_path
        self.labels = dict(options.labels)
        self.interval = options.interval
        self.source = options.source
        self.net_exclude = frozenset(options.net_exclude)
        self.ip = primary_ip()
        self.cpu_count = os.cpu_count() or 1
        self._boot_time = psutil.boot_time()
        self._gpu = gpu if gpu is not None else NvmlReader()
        self._limits = LimitsReader(self.cpu_count, psutil.virtual_memory().total, root=cgroup_root)
        self._prev = self._counters()

    @classmethod
    def from_settings(cls, settings: ClusterNB, source: str = "local") -> LocalSampler:
        """The sampler a configuration describes (node name, disk path, labels, interval, excluded NICs)."""
        return cls(SamplerOptions.from_settings(settings, source))

    def sample(self) -> NodeSnapshot:
        """One snapshot; rates are over the time since the previous call (or since construction)."""
        now = time.time()
        cur = self._counters()
        prev, self._prev = self._prev, cur
        elapsed = max(cur.mono - prev.mono, 1e-9)
        total = cur.cpu_total - prev.cpu_total
        cpu_percent = min(max(100.0 * (cur.cpu_busy - prev.cpu_busy) / total, 0.0), 100.0) if total > 0 else 0.0
        vm = psutil.virtual_memory()
        swap = psutil.swap_memory()
        disk = psutil.disk_usage(self.disk_path)
        load = os.getloadavg()
        limits = self._limits.read()
        return NodeSnapshot(
            node=self.node,
            host=self.host,
            ip=self.ip,
            time=now,
            cpu_count=self.cpu_count,
            cpu_percent=round(cpu_percent, 2),
            load_1=load[0],
            load_5=load[1],
            load_15=load[2],
            mem_total_bytes=vm.total,
            # What is not available is used, as `free` and htop show it; some container views of /proc report
            # more available than total, which no reader would accept: clamp to what can be true.
            mem_used_bytes=max(vm.total - vm.available, 0),
            mem_available_bytes=min(vm.available, vm.total),
            swap_total_bytes=swap.total,
            swap_used_bytes=min(swap.used, swap.total),
            disk_path=self.disk_path,
            disk_total_bytes=disk.total,
            disk_used_bytes=disk.used,
            disk_read_bps=_rate(cur.disk_read, prev.disk_read, elapsed),
            disk_write_bps=_rate(cur.disk_write, prev.disk_write, elapsed),
            net_rx_bps=_rate(cur.net_rx, prev.net_rx, elapsed),
            net_tx_bps=_rate(cur.net_tx, prev.net_tx, elapsed),
            uptime_s=round(now - self._boot_time, 3),
            interval_s=self.interval,
            cpu_limit=limits.cpu_limit,
            mem_limit_bytes=limits.mem_limit_bytes,
            mem_cgroup_used_bytes=limits.mem_used_bytes,
            source=self.source,
            labels=self.labels,
            gpus=self._gpu.read(),
        )

    def gpu_processes(self) -> dict[int, dict[int, int]]:
        """GPU memory per process (pid -> {GPU index: bytes}), through this sampler's NVML handles."""
        return self._gpu.process_memory()

    def close(self) -> None:
        self._gpu.close()

    def _counters(self) -> _Counters:
        mono = time.monotonic()
        cpu = psutil.cpu_times()
        # psutil's own definition of busy: everything but idle and iowait; guest time is already in user.
        total = sum(cpu) - getattr(cpu, "guest", 0.0) - getattr(cpu, "guest_nice", 0.0)
        busy = total - cpu.idle - getattr(cpu, "iowait", 0.0)
        io = psutil.disk_io_counters()
        rx = tx = 0
        for nic, counters in psutil.net_io_counters(pernic=True).items():
            if nic not in self.net_exclude:
                rx += counters.bytes_recv
                tx += counters.bytes_sent
        return _Counters(
            mono,
            busy,
            total,
            io.read_bytes if io else 0,
            io.write_bytes if io else 0,
            rx,
            tx,
        )


def _rate(cur: int, prev: int, elapsed: float) -> float:
    # Counters reset when an interface is recreated or a counter wraps: report 0 rather than a negative rate.
    return round(max(cur - prev, 0) / elapsed, 1)


def primary_ip() -> str:
    """First non-loopback IPv4 address of this host ('127.0.0.1' when it has none)."""
    for nic, addrs in psutil.net_if_addrs().items():
        if nic == "lo":
            continue
        for addr in addrs:
            if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                return str(addr.address)
    return "127.0.0.1"
