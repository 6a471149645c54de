"""Test helpers shared by every suite: snapshot factories and real-process fixtures' plumbing."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import msgspec

from clusternb.kernel_usage.record import KernelReport, KernelStat
from clusternb.model import GPUStat, NodeSnapshot


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM a child (if still running), wait ``timeout`` seconds, then SIGKILL: no test leaves one behind."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def make_snapshot(node: str = "n1", time: float = 1_700_000_000.0, **changes: Any) -> NodeSnapshot:
    """A plausible snapshot; override any field by keyword."""
    base = NodeSnapshot(
        node=node,
        host=node,
        ip="10.0.0.1",
        time=time,
        cpu_count=8,
        cpu_percent=12.5,
        load_1=0.5,
        load_5=0.4,
        load_15=0.3,
        mem_total_bytes=16 * 2**30,
        mem_used_bytes=4 * 2**30,
        mem_available_bytes=12 * 2**30,
        swap_total_bytes=2 * 2**30,
        swap_used_bytes=0,
        disk_path="/",
        disk_total_bytes=100 * 2**30,
        disk_used_bytes=40 * 2**30,
        disk_read_bps=1000.0,
        disk_write_bps=2000.0,
        net_rx_bps=3000.0,
        net_tx_bps=4000.0,
        uptime_s=3600.0,
    )
    if "mem_total_bytes" in changes or "mem_used_bytes" in changes:  # keep available = total - used, as psutil
        total = changes.get("mem_total_bytes", base.mem_total_bytes)
        used = changes.get("mem_used_bytes", base.mem_used_bytes)
        changes.setdefault("mem_available_bytes", max(total - used, 0))
    return msgspec.structs.replace(base, **changes)


def make_gpu(index: int = 0, **changes: Any) -> GPUStat:
    base = GPUStat(
        index=index,
        name="Fake A100",
        uuid=f"GPU-{index}",
        util_percent=50.0,
        mem_total_bytes=40 * 2**30,
        mem_used_bytes=10 * 2**30,
        temperature_c=60.0,
        power_w=250.0,
    )
    return msgspec.structs.replace(base, **changes)


def make_kernel(kernel_id: str = "k1", **changes: Any) -> KernelStat:
    """A plausible measured kernel of user ``me``; override any field by keyword."""
    base = KernelStat(
        kernel_id=kernel_id, path=f"{kernel_id}.ipynb", kernel_name="python3", execution_state="idle",
        last_activity=1_700_000_000.0, connections=1, user="me", pid=4242, processes=2, cpu_percent=3.5,
        rss_bytes=300 * 2**20, pss_bytes=250 * 2**20, uss_bytes=200 * 2**20, threads=12,
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def make_report(node: str = "a", time: float = 1_700_000_099.0, kernels: Any = None, **changes: Any) -> KernelReport:
    """A report of one server on ``node`` with two kernels (or ``kernels``)."""
    kernels = (make_kernel("k1"), make_kernel("k2", user="other", path="secret.ipynb")) if kernels is None else kernels
    base = KernelReport(node=node, server=f"http://{node}:8888/", time=time, interval_s=2.0, kernels=tuple(kernels))
    return msgspec.structs.replace(base, **changes)
