"""The server's heap trim: on glibc (this project's Linux machines) it exists and returns memory once freed."""

from __future__ import annotations

from clusternb.server import memtrim


def test_freed_heap_pages_go_back_to_the_system() -> None:
    trim = memtrim.trimmer()
    assert trim is not None  # Debian's glibc: a trimmer must exist, or the server's RSS swings again
    blocks = [bytearray(64 * 1024 - 64) for _ in range(2000)]  # ~128 MiB below glibc's mmap threshold: heap
    del blocks[::2]  # holes in the heap, not at its top: only malloc_trim gives them back
    assert trim() in (0, 1)
    del blocks
    assert trim() == 1  # the freed pages went back
