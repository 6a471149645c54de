"""GPUs through NVML (``nvidia-ml-py``, the ``gpu`` extra). No library, no driver or no GPU: an empty list.

NVML is initialised once per reader and device handles are kept, because ``nvmlInit`` and handle lookups
cost milliseconds while the per-sample reads cost microseconds. Each field is read on its own: a card that
cannot report power still reports memory and temperature.

On Linux the driver's library is looked for before ``pynvml`` is imported: that module is 3,000 lines of
constants and wrappers that cost a long-running process (the agent) over 1 MiB of RSS, and on a host without
an NVIDIA driver its ``nvmlInit`` could only fail, since it loads the same library.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from clusternb.model import GPUStat

log = logging.getLogger(__name__)

#: The library ``pynvml`` loads on Linux (``CDLL("libnvidia-ml.so.1")``); the NVIDIA driver installs it.
NVML_LIBRARY = "libnvidia-ml.so.1"


class NvmlReader:
    """Reads every GPU of this host; ``available`` is False (and ``read()`` returns ``()``) without NVML."""

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self._nvml = nvml
        self._handles: list[Any] = []
        self.available = False
        self.reason = ""
        try:
            if self._nvml is None:
                missing = nvml_driver_missing()
                if missing:
                    raise OSError(missing)  # recorded below, as any NVML that cannot start
                import pynvml

                self._nvml = pynvml
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
            self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.available = True
        except ImportError:
            self.reason = "nvidia-ml-py is not installed (pip install 'clusternb[gpu]')"
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no GPU here
            self.reason = f"NVML unavailable: {exc}"
        if not self.available:
            log.debug("no GPU metrics: %s", self.reason)

    def read(self) -> tuple[GPUStat, ...]:
        if not self.available or self._nvml is None:
            return ()
        nv = self._nvml
        out = []
        for index, handle in enumerate(self._handles):
            mem = _try(nv.nvmlDeviceGetMemoryInfo, handle)
            util = _try(nv.nvmlDeviceGetUtilizationRates, handle)
            temp = _try(nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU)
            power = _try(nv.nvmlDeviceGetPowerUsage, handle)
            out.append(
                GPUStat(
                    index=index,
                    name=_text(_try(nv.nvmlDeviceGetName, handle)) or f"GPU {index}",
                    uuid=_text(_try(nv.nvmlDeviceGetUUID, handle)) or "",
                    util_percent=float(util.gpu) if util is not None else None,
                    mem_total_bytes=int(mem.total) if mem is not None else None,
                    mem_used_bytes=int(mem.used) if mem is not None else None,
                    temperature_c=float(temp) if temp is not None else None,
                    power_w=power / 1000.0 if power is not None else None,  # NVML reports milliwatts
                )
            )
        return tuple(out)

    def process_memory(self) -> dict[int, dict[int, int]]:
        """GPU memory per process: pid -> {GPU index: bytes}, from NVML's compute and graphics process lists (a
        process on two GPUs is on both; one NVML may not report a process's memory: it then counts 0)."""
        if not self.available or self._nvml is None:
            return {}
        nv = self._nvml
        out: dict[int, dict[int, int]] = {}
        for index, handle in enumerate(self._handles):
            for lister in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                for proc in _try(getattr(nv, lister), handle) or ():
                    used = getattr(proc, "usedGpuMemory", None)
                    used = int(used) if isinstance(used, int) and 0 <= used < 2**60 else 0
                    mine = out.setdefault(int(proc.pid), {})
                    mine[index] = max(mine.get(index, 0), used)  # listed as compute and graphics: once
        return out

    def close(self) -> None:
        if self.available and self._nvml is not None:
            _try(self._nvml.nvmlShutdown)
            self.available = False


def nvml_driver_missing() -> str | None:
    """Why NVML cannot start on this Linux host (its driver library does not load); None when it may.

    Loading the library is the same step ``nvmlInit`` takes first, so a host where this fails is a host where
    NVML would fail, and ``pynvml`` is not imported for nothing. Elsewhere (Windows) pynvml finds its own DLL.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        ctypes.CDLL(NVML_LIBRARY)  # kept loaded by the loader: pynvml's own CDLL of it then costs nothing more
    except OSError as exc:
        return f"no NVIDIA driver library ({exc})"
    return None


def _try(call: Callable[..., Any], *args: Any) -> Any:
    """Call one NVML function; None when the card does not support it (the rest of the sample goes on)."""
    try:
        return call(*args)
    except Exception:  # NVMLError_NotSupported and friends
        return None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
