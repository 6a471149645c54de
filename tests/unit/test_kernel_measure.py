"""KernelMeter on real processes: a kernel's tree (itself and its children) is summed; GPU memory per process.

NVML is the one part mocked here (no GPU on the machines that run the suite): a fake ``pynvml`` module lists GPU
processes by pid as the real ``nvmlDeviceGetComputeRunningProcesses`` does. The process tree, its memory and
CPU are this test's own process and a real child it starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from clusternb.kernel_usage.measure import KernelInfo, KernelMeter
from clusternb.sources.gpu import NvmlReader

MiB = 2**20


class FakeNvml:
    """The few pynvml calls the reader makes, over two GPUs whose process lists the test sets."""

    def __init__(self, processes: dict[int, list[Any]]) -> None:
        self.processes = processes

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        pass

    def nvmlShutdown(self) -> None:  # noqa: N802
        pass

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.processes)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:  # noqa: N802
        return self.processes[handle]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[Any]:  # noqa: N802
        return [p for p in self.processes[handle] if getattr(p, "graphics", False)]


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A real child of this process holding 64 MiB, as a kernel's multiprocessing worker would."""
    code = "import time\nheld = bytearray(64 * 2**20)\nfor i in range(0, len(held), 4096): held[i] = 1\ntime.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(1.0)  # let it touch its memory (the assertion below polls anyway)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _info(pid: int | None) -> KernelInfo:
    return KernelInfo("k1", "python3", "busy", time.time(), 1, pid, "a.ipynb")


def test_a_kernels_tree_is_summed_with_its_gpu_memory_per_device(child: subprocess.Popen[bytes]) -> None:
    nvml = FakeNvml({
        0: [SimpleNamespace(pid=os.getpid(), usedGpuMemory=1 * MiB), SimpleNamespace(pid=999_999, usedGpuMemory=7)],
        1: [SimpleNamespace(pid=child.pid, usedGpuMemory=3 * MiB, graphics=True)],  # listed twice: counted once
    })  # fmt: skip
    reader = NvmlReader(nvml=nvml)  # type: ignore[arg-type]
    meter = KernelMeter(reader.process_memory)
    meter.measure([_info(os.getpid())])  # the first reading is CPU's baseline
    deadline = time.monotonic() + 30
    while True:
        (kernel,) = meter.measure([_info(os.getpid())])
        if ((kernel.rss_bytes or 0) > 64 * MiB and kernel.processes >= 2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert kernel.processes >= 2 and kernel.user
    assert kernel.rss_bytes is not None and kernel.rss_bytes > 64 * MiB
    assert kernel.pss_bytes is not None and kernel.uss_bytes is not None and kernel.threads
    assert kernel.gpu_mem_used_bytes == 4 * MiB  # this process on GPU 0 and its child on GPU 1; not pid 999999
    assert [(g.index, g.mem_used_bytes) for g in kernel.gpus] == [(0, 1 * MiB), (1, 3 * MiB)]


def test_a_kernel_whose_process_exited_is_left_out_and_a_remote_one_is_listed_unmeasured() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    meter = KernelMeter()
    measured = meter.measure([_info(gone.pid), _info(None)])
    assert len(measured) == 1 and measured[0].pid is None and measured[0].rss_bytes is None
    assert measured[0].gpu_mem_used_bytes is None  # no NVML reader: unknown, not zero


def test_without_nvml_the_reader_lists_no_gpu_processes() -> None:
    class Missing:
        def nvmlInit(self) -> None:  # noqa: N802
            raise RuntimeError("NVML Shared Library Not Found")

    assert NvmlReader(nvml=Missing()).process_memory() == {}  # type: ignore[arg-type]
