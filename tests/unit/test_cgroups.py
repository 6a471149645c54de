"""Container limits parsed from synthetic cgroup v1 and v2 trees (the host here has no limit to read)."""

from __future__ import annotations

from pathlib import Path

from clusternb.sources.cgroups import ContainerLimits, read_limits

GiB = 2**30


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v2_limits_and_working_set(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cgroup.controllers", "cpu memory")
    _write(root / "job" / "cpu.max", "150000 100000\n")
    _write(root / "job" / "memory.max", f"{4 * GiB}\n")
    _write(root / "job" / "memory.current", f"{3 * GiB}\n")
    _write(root / "job" / "memory.stat", f"anon 1\ninactive_file {GiB}\n")
    proc = tmp_path / "cgroup"
    _write(proc, "0::/job\n")
    got = read_limits(8, 16 * GiB, root=root, proc_cgroup=proc)
    assert got == ContainerLimits(cpu_limit=1.5, mem_limit_bytes=4 * GiB, mem_used_bytes=2 * GiB)


def test_v2_unlimited(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cgroup.controllers", "cpu memory")
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "memory.max", "max\n")
    got = read_limits(8, 16 * GiB, root=root, proc_cgroup=tmp_path / "missing")
    assert got == ContainerLimits()


def test_v1_limits_at_namespace_root(tmp_path: Path) -> None:
    # Inside a container the own path from /proc/self/cgroup is not visible; the mount root is the cgroup.
    root = tmp_path / "cg"
    _write(root / "cpu" / "cpu.cfs_quota_us", "200000\n")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    _write(root / "memory" / "memory.limit_in_bytes", f"{2 * GiB}\n")
    _write(root / "memory" / "memory.usage_in_bytes", f"{GiB}\n")
    _write(root / "memory" / "memory.stat", "total_inactive_file 0\n")
    proc = tmp_path / "cgroup"
    _write(proc, "4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n")
    got = read_limits(8, 16 * GiB, root=root, proc_cgroup=proc)
    assert got == ContainerLimits(cpu_limit=2.0, mem_limit_bytes=2 * GiB, mem_used_bytes=GiB)


def test_v1_no_quota_and_huge_limit_mean_unlimited(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    _write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    assert read_limits(8, 16 * GiB, root=root, proc_cgroup=tmp_path / "none") == ContainerLimits()


def test_limit_above_host_is_no_limit(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cgroup.controllers", "")
    _write(root / "cpu.max", "1600000 100000\n")  # 16 cores on an 8-core host
    _write(root / "memory.max", f"{32 * GiB}\n")
    assert read_limits(8, 16 * GiB, root=root, proc_cgroup=tmp_path / "none") == ContainerLimits()


def test_unreadable_tree_is_no_limits(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cgroup.controllers", "")
    _write(root / "cpu.max", "garbage here\n")
    assert read_limits(8, 16 * GiB, root=root, proc_cgroup=tmp_path / "none") == ContainerLimits()


def test_limits_reader_rereads_only_now_and_then_unless_limited(tmp_path: Path) -> None:
    from clusternb.sources.cgroups import LimitsReader

    root = tmp_path / "cg"
    _write(root / "cgroup.controllers", "")
    _write(root / "memory.max", "max\n")
    reader = LimitsReader(8, 16 * GiB, root=root, refresh_every=3)
    assert reader.read().mem_limit_bytes is None
    _write(root / "memory.max", f"{GiB}\n")  # `docker update --memory` while running
    _write(root / "memory.current", f"{GiB // 2}\n")
    assert reader.read().mem_limit_bytes is None and reader.read().mem_limit_bytes is None  # cached
    assert reader.read().mem_limit_bytes == GiB  # the periodic re-read sees the new limit
    _write(root / "memory.current", f"{GiB // 4}\n")
    assert reader.read().mem_used_bytes == GiB // 4  # limited: usage read on every call
