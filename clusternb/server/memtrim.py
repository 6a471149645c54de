"""Give the heap's free pages back to the operating system (glibc ``malloc_trim``), on a timer.

Why: in the 30-minute soak of issue 17 the server's allocations in use stayed at 51 MiB from minute 5 to 30,
while glibc's free lists swung between 17 and 45 MiB with the request mix, and the server's RSS with them by
about 10 %: memory nobody used, still counted against the server. glibc returns only the top of its heap on
its own; ``malloc_trim(0)`` also releases free pages inside it. Dask's workers do the same for the same reason
(distributed's "memory not released back to the OS"). Where the C library is not glibc (musl, macOS) there is
nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable


def trimmer() -> Callable[[], int] | None:
    """A call that trims the heap now (1 if memory went back to the system), or None without glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: musl has no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def run() -> int:
        return int(trim(0))

    return run
