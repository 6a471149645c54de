"""GPU reading through NVML.

This machine has no GPU, so the NVML *module* is replaced by a small fake that answers like pynvml does for
two cards (one of which cannot report power). That is the only mock in the suite: a GPU cannot exist here.
The no-GPU path runs against the real nvidia-ml-py, which fails to find the driver library.
"""

from __future__ import annotations

from types import SimpleNamespace

from clusternb.sources.gpu import NvmlReader


class _NotSupported(Exception):
    pass


class FakeNVML:
    NVML_TEMPERATURE_GPU = 0

    def __init__(self) -> None:
        self.shutdown = False

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shutdown = True

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"Fake A100"

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-{h}"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(total=40 * 2**30, used=(h + 1) * 2**30, free=0)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=30 + h * 40, memory=10)

    def nvmlDeviceGetTemperature(self, h: int, kind: int) -> int:
        return 55 + h

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        if h == 1:
            raise _NotSupported("power not supported")
        return 250_000


def test_reads_every_gpu_and_tolerates_unsupported_fields() -> None:
    fake = FakeNVML()
    reader = NvmlReader(nvml=fake)  # type: ignore[arg-type]
    gpus = reader.read()
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].name == "Fake A100" and gpus[0].uuid == "GPU-0"
    assert gpus[0].power_w == 250.0
    assert gpus[1].power_w is None  # unsupported on that card, the rest still read
    assert gpus[1].mem_used_bytes == 2 * 2**30 and gpus[1].util_percent == 70.0
    reader.close()
    assert fake.shutdown and reader.read() == ()


def test_real_nvml_without_a_gpu_is_an_empty_list() -> None:
    reader = NvmlReader()  # real nvidia-ml-py: no driver library on this machine
    assert reader.available is False
    assert reader.read() == ()
    assert reader.reason
