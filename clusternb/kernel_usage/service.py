"""The kernels side of a :class:`~clusternb.queries.Client`: publishing this server's kernels, and the query.

A server with the extension hands its kernel directory to :meth:`KernelService.watch`; from then on the host's
one sampler thread measures every kernel after each host sample (:class:`~clusternb.kernel_usage.measure.KernelMeter`)
and publishes one report for the server on the board (memory, or Redis for the cluster). Any process reads the
board: ``kernels()`` in a notebook on another node shows this server's kernels too.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import psutil
from jupyter_core.paths import jupyter_runtime_dir

from clusternb.alerting.rules import kernel_subject
from clusternb.kernel_usage.board import FileBoard, KernelBoard, MemoryBoard, MirroredBoard, RedisBoard
from clusternb.kernel_usage.frame import KernelFilter, Viewer, kernels_frame, memory_of
from clusternb.kernel_usage.measure import GpuByPid, KernelInfo, KernelMeter, current_user
from clusternb.kernel_usage.record import KERNELS_MAX, KernelReport
from clusternb.params import check_arguments
from clusternb.redisio.errors import RedisFault
from clusternb.rejects import Rejections
from clusternb.sampler import Sampler
from clusternb.sources.cgroups import LimitsReader
from clusternb.sources.gpu import NvmlReader

if TYPE_CHECKING:
    from clusternb.config import ClusterNB
    from clusternb.model import NodeSnapshot
    from clusternb.redisio.link import RedisLink
    from clusternb.state.base import StateStore

log = logging.getLogger(__name__)
Directory = Callable[[], tuple[KernelInfo, ...]]


def board_for(settings: ClusterNB, link: RedisLink | None, rejections: Rejections) -> KernelBoard:
    """Redis mirrored to memory in cluster mode; in embedded mode, files in Jupyter's runtime directory (where a
    notebook's kernel finds its servers' reports) mirrored to memory. A report expires when its server has not
    renewed it for as long as a node takes to be called offline (at least 30 s)."""
    expire = max(30.0, settings.thresholds(settings.interval)[1])
    if link is not None:
        return MirroredBoard(RedisBoard(link, rejections, expire), MemoryBoard(expire))
    return MirroredBoard(FileBoard(Path(jupyter_runtime_dir()), rejections, expire), MemoryBoard(expire))


class KernelService:
    """Publishes this server's kernels (once :meth:`watch` was called) and answers ``kernels()``."""

    def __init__(
        self, settings: ClusterNB, board: KernelBoard, store: StateStore, rejections: Rejections | None = None
    ) -> None:
        self.settings = settings
        self.rejections = rejections if rejections is not None else Rejections()
        self.board = board
        self.store = store
        self.viewer = Viewer(current_user(), settings.kernel_paths_of_others)
        self._directory: Directory | None = None
        self._server = ""
        self._meter: KernelMeter | None = None
        self._published: str | None = None
        self._thread: Sampler | None = None
        self._gpu: NvmlReader | None = None
        self._subjects: set[str] = set()
        #: Called with each report's kernel shares of their node's memory (the client evaluates its kernel rules).
        self.on_shares: Callable[[dict[str, float | None], float], object] | None = None

    def watch(self, directory: Directory, server: str, gpu_by_pid: GpuByPid | None, own_thread: bool) -> None:
        """Measure and publish the kernels ``directory()`` lists, as the server at URL ``server``.

        ``gpu_by_pid``: the host sampler's NVML reader (None: open one here). ``own_thread``: no host sampler
        calls :meth:`after_sample` in this process, so one thread of its own publishes every interval.
        """
        if gpu_by_pid is None:
            self._gpu = NvmlReader()
            gpu_by_pid = self._gpu.process_memory
        self._server = server
        self._meter = KernelMeter(gpu_by_pid)
        self._directory = directory
        if own_thread:
            node, interval = self.settings.node_name or socket.gethostname(), self.settings.interval
            total = psutil.virtual_memory().total
            limits = LimitsReader(psutil.cpu_count() or 1, total)  # a pod's limit, as the host sampler reads it

            def publish() -> None:
                self.publish(node, interval, limits.read().mem_limit_bytes or total)

            self._thread = Sampler(publish, [], interval, name="clusternb-kernels").start()

    @property
    def watching(self) -> bool:
        return self._directory is not None

    def publish(self, node: str, interval: float, memory: int) -> KernelReport | None:
        """Measure every kernel now, publish the server's report and hand each kernel's share of ``memory`` (the
        node's container limit, else its total) to :attr:`on_shares` (sampler thread; None when not watching)."""
        if self._directory is None or self._meter is None:
            return None
        kernels = self._meter.measure(self._directory()[:KERNELS_MAX])
        report = KernelReport(node=node, server=self._server, time=time.time(), interval_s=interval, kernels=kernels)
        self.board.put(report)
        self._published = report.publisher
        if self.on_shares is not None:
            self.on_shares(self._shares(report, memory), report.time)
        return report

    def _shares(self, report: KernelReport, memory: int) -> dict[str, float | None]:
        """Each kernel's share of its node's memory, by alert subject; None for a kernel measured last time and
        gone now, so its alert ends (this server's kernels only: another server's are its own to judge)."""
        shares: dict[str, float | None] = dict.fromkeys(self._subjects)
        for kernel in report.kernels:
            used = memory_of(kernel)
            if used is not None and memory > 0:
                shares[kernel_subject(report.node, kernel.kernel_id)] = 100.0 * used / memory
        self._subjects = {s for s, v in shares.items() if v is not None}
        return shares

    def _plausible(self, reports: list[KernelReport], capacity: dict[str, int]) -> list[KernelReport]:
        """The reports whose kernels fit their node: one claiming more memory than its node has (``capacity``:
        the host's memory, where the node is known) is no measurement; it is skipped and counted, like a record
        out of bounds."""
        out = []
        for report in reports:
            most = capacity.get(report.node, 0)
            if most and any(max(k.rss_bytes or 0, k.pss_bytes or 0) > most for k in report.kernels):
                self.rejections.add("kernels", report.node, "a kernel holds more memory than its node has")
                continue
            out.append(report)
        return out

    def after_sample(self, snapshot: NodeSnapshot) -> None:
        """Sampler sink: the kernels of the node just sampled."""
        self.publish(snapshot.node, snapshot.interval_s, snapshot.mem_limit_bytes or snapshot.mem_total_bytes)

    def close(self) -> None:
        """Stop publishing, end this server's kernel alerts (nobody else judges its kernels) and remove its report:
        its kernels are gone at once, not when the report expires."""
        if self._thread is not None:
            self._thread.stop()
        if self.on_shares is not None and self._subjects:
            self.on_shares(dict.fromkeys(self._subjects), time.time())
            self._subjects = set()
        if self._gpu is not None:
            self._gpu.close()
        if self._published is not None:
            with contextlib.suppress(RedisFault):
                self.board.remove(self._published)

    def build(
        self, now: float, node: Any = None, path: Any = None, min_memory: Any = None, me: bool = False
    ) -> tuple[Any, Callable[[], pd.DataFrame]]:
        """The query: checked arguments and the reports' stamps (the cache key), and how to compute the frame.

        The reports are read here, on every call, and each one's publisher and time are part of the key: a
        result is computed again when a server publishes (every sampling interval while it runs kernels) or a
        report expires, and only then (the client gives this query no clock bucket: see ``OWN_FRESHNESS``).
        """
        checked = check_arguments("kernels", now, {"node": node, "path": path, "min_memory": min_memory, "me": me})
        chosen = KernelFilter(checked["node"], checked["path"], checked["min_memory"], checked["me"])
        reports = self.board.reports()
        stamps = tuple(sorted((r.publisher, r.time) for r in reports))

        def compute() -> pd.DataFrame:
            latest = self.store.latest()
            memory = {s.node: s.mem_limit_bytes or s.mem_total_bytes for s in latest}
            capacity = {s.node: max(s.mem_total_bytes, s.mem_limit_bytes or 0) for s in latest}
            return kernels_frame(self._plausible(reports, capacity), time.time(), memory, self.viewer, chosen)

        viewer = (self.viewer.user, self.viewer.sees_all_paths)  # one user's view is never another's cache entry
        return (chosen.node, chosen.path, chosen.min_memory, chosen.me, viewer, stamps), compute
