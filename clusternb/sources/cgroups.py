"""Container limits from cgroup v1 or v2, read as plain files so the parsing is testable on any tree.

A limit that is absent, ``max``, or not below the host's own total is reported as ``None``: a notebook in a
container needs to know the limit it will be killed at, not a number meaning "unlimited".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_V1_UNLIMITED = 1 << 62  # v1 writes PAGE_COUNTER_MAX rounded to pages (~9.2e18) for "no limit"


@dataclass(frozen=True, slots=True)
class ContainerLimits:
    """CPU cores granted by a quota, memory limit and the cgroup's own memory use (all None when unlimited)."""

    cpu_limit: float | None = None
    mem_limit_bytes: int | None = None
    mem_used_bytes: int | None = None


def read_limits(
    host_cpus: int,
    host_mem_bytes: int,
    root: Path = Path("/sys/fs/cgroup"),
    proc_cgroup: Path = Path("/proc/self/cgroup"),
) -> ContainerLimits:
    """Limits of the cgroup this process runs in; never raises (an unreadable tree means no limits)."""
    try:
        paths = _own_paths(proc_cgroup)
        if (root / "cgroup.controllers").exists():
            return _read_v2(root, paths.get("", "/"), host_cpus, host_mem_bytes)
        return _read_v1(root, paths, host_cpus, host_mem_bytes)
    except (OSError, ValueError):
        return ContainerLimits()


def _own_paths(proc_cgroup: Path) -> dict[str, str]:
    """Map controller name ('' for the v2 unified tree) -> this process's path in it."""
    out: dict[str, str] = {}
    try:
        text = proc_cgroup.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            out[controller] = parts[2]
    return out


def _candidates(base: Path, own: str) -> list[Path]:
    # Inside a container the own path is often not visible (the namespace root *is* the cgroup); outside,
    # the limit sits at the own path. Try the own path first, then the mount root.
    rel = own.strip("/")
    return [base / rel, base] if rel else [base]


def _first(base: Path, own: str, name: str) -> str | None:
    for directory in _candidates(base, own):
        path = directory / name
        if path.is_file():
            return path.read_text().strip()
    return None


def _read_v2(root: Path, own: str, host_cpus: int, host_mem: int) -> ContainerLimits:
    cpu = None
    cpu_max = _first(root, own, "cpu.max")
    if cpu_max:
        quota, _, period = cpu_max.partition(" ")
        if quota != "max" and period:
            cpu = int(quota) / int(period)
    mem = _parse_mem_limit(_first(root, own, "memory.max"), host_mem)
    used = None
    if mem is not None:
        current = _first(root, own, "memory.current")
        used = _minus_inactive(current, _first(root, own, "memory.stat"), "inactive_file")
    return ContainerLimits(_cap_cpu(cpu, host_cpus), mem, used)


def _read_v1(root: Path, paths: dict[str, str], host_cpus: int, host_mem: int) -> ContainerLimits:
    cpu = None
    cpu_own = paths.get("cpu", paths.get("cpu,cpuacct", "/"))
    quota = _first(root / "cpu", cpu_own, "cpu.cfs_quota_us")
    period = _first(root / "cpu", cpu_own, "cpu.cfs_period_us")
    if quota and period and int(quota) > 0 and int(period) > 0:
        cpu = int(quota) / int(period)
    mem_own = paths.get("memory", "/")
    mem = _parse_mem_limit(_first(root / "memory", mem_own, "memory.limit_in_bytes"), host_mem)
    used = None
    if mem is not None:
        usage = _first(root / "memory", mem_own, "memory.usage_in_bytes")
        used = _minus_inactive(usage, _first(root / "memory", mem_own, "memory.stat"), "total_inactive_file")
    return ContainerLimits(_cap_cpu(cpu, host_cpus), mem, used)


def _parse_mem_limit(raw: str | None, host_mem: int) -> int | None:
    if raw is None or raw == "max":
        return None
    value = int(raw)
    if value >= _V1_UNLIMITED or value >= host_mem > 0:
        return None
    return value


def _cap_cpu(cpu: float | None, host_cpus: int) -> float | None:
    if cpu is None or cpu >= host_cpus:
        return None
    return cpu


def _minus_inactive(usage: str | None, stat: str | None, key: str) -> int | None:
    """Working set as `docker stats` reports it: usage minus inactive page cache."""
    if usage is None:
        return None
    used = int(usage)
    for line in (stat or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return max(used - int(value), 0)
    return used


class LimitsReader:
    """Reads limits once and again every ``refresh_every`` calls: limits almost never change, and reading
    the cgroup tree costs ~70 µs, a fifth of a whole sample. Inside a limited container the cgroup's memory
    use changes every sample, so the files are read on every call there."""

    def __init__(
        self,
        host_cpus: int,
        host_mem_bytes: int,
        root: Path = Path("/sys/fs/cgroup"),
        refresh_every: int = 30,
    ) -> None:
        self._args = (host_cpus, host_mem_bytes)
        self._root = root
        self.refresh_every = refresh_every
        self._calls = 0
        self._last = ContainerLimits()

    def read(self) -> ContainerLimits:
        if self._calls % self.refresh_every == 0 or self._last.mem_limit_bytes is not None:
            self._last = read_limits(*self._args, root=self._root)
        self._calls += 1
        return self._last
