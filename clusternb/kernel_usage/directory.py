"""What a Jupyter server knows of its kernels: read on its event loop, handed to the sampler thread.

jupyter_server's kernel and session managers belong to the server's event loop (the session manager is async
and backed by SQLite), so they are read there, once per sampling interval, by the extension
(:class:`DirectoryWatch`). The result is an immutable tuple the host's sampler thread picks up as it is when it
measures (:class:`~clusternb.kernel_usage.measure.KernelMeter`): no lock, no thread per kernel, and no kernel manager
call from another thread.

Only public APIs are read: ``list_kernel_ids``, ``kernel_model`` (name, state, connections), ``get_kernel``
(its provisioner's pid and its ``last_activity``), and ``list_sessions`` (the notebook or console path).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from clusternb.kernel_usage.measure import KernelInfo
from clusternb.model import NAME_MAX

log = logging.getLogger(__name__)

#: Path characters kept: a longer path is cut (the record's bound), never a reason to drop the kernel.
PATH_MAX = 4096


async def read_directory(kernel_manager: Any, session_manager: Any | None) -> tuple[KernelInfo, ...]:
    """Every running kernel of the server, with its notebook or console path where a session names it."""
    paths: dict[str, str] = {}
    if session_manager is not None:
        for session in await session_manager.list_sessions():
            kernel = session.get("kernel") or {}
            if isinstance(kernel.get("id"), str):
                paths[kernel["id"]] = str(session.get("path") or "")[:PATH_MAX]
    out = []
    for kernel_id in list(kernel_manager.list_kernel_ids()):
        try:
            model = kernel_manager.kernel_model(kernel_id)
            kernel = kernel_manager.get_kernel(kernel_id)
        except KeyError:  # shut down meanwhile
            continue
        pid = getattr(getattr(kernel, "provisioner", None), "pid", None)
        activity = getattr(kernel, "last_activity", None)
        out.append(
            KernelInfo(
                kernel_id=kernel_id,
                kernel_name=str(model.get("name") or "")[:NAME_MAX],
                execution_state=str(model.get("execution_state") or "unknown")[:32],
                last_activity=activity.timestamp() if isinstance(activity, datetime) else 0.0,
                connections=int(model.get("connections") or 0),
                pid=pid if isinstance(pid, int) and pid > 0 else None,
                path=paths.get(kernel_id, ""),
            )
        )
    return tuple(out)


class DirectoryWatch:
    """Holds the newest kernel directory; :meth:`refresh` (on the server's loop) reads it again.

    ``current`` is what the sampler thread reads: a tuple replaced whole, so a reader sees one directory or
    the next, never half of one. A failing read keeps the previous directory and is logged once per kind.
    """

    def __init__(self, read: Callable[[], Awaitable[tuple[KernelInfo, ...]]]) -> None:
        self._read = read
        self.current: tuple[KernelInfo, ...] = ()
        self._errors: set[str] = set()

    async def refresh(self) -> None:
        try:
            self.current = await self._read()
        except Exception as exc:
            kind = type(exc).__name__
            if kind not in self._errors:
                self._errors.add(kind)
                log.warning("clusternb: could not list the server's kernels (%s; logged once): %s", kind, exc)
