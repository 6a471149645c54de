"""Pure shaping of kernel reports into the ``kernels()`` frame: privacy first, then the filters, then the columns.

Nothing here does I/O or reads a clock. The columns and their dtypes are declared once, in the kernel record
(:mod:`clusternb.kernel_usage.record`) and :data:`clusternb.schema.KERNELS`.

Privacy: on a node that several users share (JupyterHub), a kernel owned by another Unix user shows no path
(``<NA>``) unless the reader is allowed to see every path (``ClusterNB.kernel_paths_of_others``). It is still a
row, so counts and totals stay true, but it cannot be found by its path: the path filter applies after the
paths are hidden.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clusternb import columns, dtypes
from clusternb.kernel_usage.record import KernelReport, KernelStat


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads the frame: their Unix user, and whether they may see other users' paths."""

    user: str
    sees_all_paths: bool = False

    def owns(self, kernel: KernelStat) -> bool:
        return kernel.user == self.user


@dataclass(frozen=True, slots=True)
class KernelFilter:
    """The checked ``kernels()`` arguments (None: not given)."""

    node: tuple[str, ...] | None = None
    path: str | None = None
    min_memory: int | None = None
    me: bool = False

    def keeps(self, node: str, kernel: KernelStat, path: str | None, own: bool) -> bool:
        if self.node is not None and node not in self.node:
            return False
        if self.me and not own:
            return False
        if self.path is not None and (path is None or not fnmatch.fnmatchcase(path, self.path)):
            return False
        return self.min_memory is None or (memory_of(kernel) or 0) >= self.min_memory


def memory_of(kernel: KernelStat) -> int | None:
    """The kernel's memory as shares and totals count it: PSS (shared pages split), else RSS."""
    return kernel.pss_bytes if kernel.pss_bytes is not None else kernel.rss_bytes


def kernels_frame(
    reports: Iterable[KernelReport],
    now: float,
    node_memory: Mapping[str, int],
    viewer: Viewer,
    chosen: KernelFilter | None = None,
) -> pd.DataFrame:
    """One row per kernel, indexed by kernel id, largest memory first; see :data:`columns.KERNEL_COLUMNS`.

    ``node_memory``: each node's memory limit (its container's, else its total), for ``mem_share_percent``.
    """
    chosen = chosen or KernelFilter()
    rows: list[tuple[KernelReport, KernelStat, str | None, bool]] = []
    seen: set[str] = set()
    for report in sorted(reports, key=lambda r: -r.time):  # a kernel id twice (a forged report): the newest
        for kernel in report.kernels:
            if kernel.kernel_id in seen:
                continue
            seen.add(kernel.kernel_id)
            own = viewer.owns(kernel)
            path = kernel.path if own or viewer.sees_all_paths else None
            if chosen.keeps(report.node, kernel, path, own):
                rows.append((report, kernel, path, own))
    rows.sort(key=lambda row: (-(memory_of(row[1]) or 0), row[0].node, row[1].kernel_id))
    data = _columns(rows, now, node_memory)
    index = pd.Index(dtypes.strings([k.kernel_id for _, k, _, _ in rows]), name="kernel_id")
    return dtypes.typed(data, columns.KERNEL_COLUMNS, index)


def _columns(
    rows: Sequence[tuple[KernelReport, KernelStat, str | None, bool]], now: float, node_memory: Mapping[str, int]
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for col in columns.KERNEL_COLUMNS:
        if hasattr(KernelStat, col.name) and col.name not in ("path", "gpus"):
            data[col.name] = [getattr(k, col.name) for _, k, _, _ in rows]
    data["last_activity"] = [k.last_activity for _, k, _, _ in rows]
    data["node"] = [r.node for r, _, _, _ in rows]
    data["server"] = [r.server for r, _, _, _ in rows]
    data["path"] = [p for _, _, p, _ in rows]
    data["own"] = [own for _, _, _, own in rows]
    data["mem_share_percent"] = [_share(memory_of(k), node_memory.get(r.node)) for r, k, _, _ in rows]
    data["gpu_devices"] = [",".join(str(g.index) for g in k.gpus) for _, k, _, _ in rows]
    sampled = np.array([r.time for r, _, _, _ in rows], dtype="float64")
    data["sampled_at"] = pd.to_datetime(np.round(sampled * 1e6).astype("int64"), unit="us", utc=True)
    data["last_activity"] = pd.to_datetime(
        np.round(np.array(data["last_activity"], dtype="float64") * 1e6).astype("int64"), unit="us", utc=True
    )
    data["age_s"] = np.round(now - sampled, 3)
    return data


def _share(used: int | None, total: int | None) -> float:
    """``used`` as a percent of ``total``, at most 100 (a kernel may hold more than a container's limit for a
    moment, before the OOM killer acts; it never holds more than all of it)."""
    return min(round(100.0 * used / total, 2), 100.0) if used is not None and total else float("nan")
