"""Dask schedulers as a source: one snapshot per worker, and the scheduler's task counts and throughput.

Worker rows come from ``Client.scheduler_info()`` (one RPC for every worker), task counts from the
scheduler's own ``/json/counts.json`` HTTP route (the dashboard server), so nothing runs on the scheduler.
``distributed`` is the ``dask`` extra: without it, connecting raises an ImportError that says what to install.

Mapping of a Dask worker onto :class:`~clusternb.model.NodeSnapshot`: ``threads`` and ``cpu_count`` are the
worker's threads, ``mem_total_bytes`` its memory limit, ``mem_used_bytes`` its process memory,
``cpu_percent`` its process CPU divided by its threads (0-100), network/disk rates the host's as the worker
reports them. Fields Dask does not know (load, swap, disk size) are 0.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from clusternb.arguments import ArgumentTypeError
from clusternb.model import NodeSnapshot, SchemaError, checked

log = logging.getLogger(__name__)
TASK_STATES = ("processing", "waiting", "memory", "erred", "released", "unrunnable")


@dataclass(frozen=True, slots=True)
class DaskSummary:
    """Scheduler-wide task counts and an approximate throughput (tasks finished per second)."""

    scheduler: str
    workers: int
    tasks: dict[str, int]
    tasks_per_s: float
    time: float


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ImportError("Dask support needs the 'distributed' package: pip install 'clusternb[dask]'") from None
    return distributed


class DaskSource:
    """Reads one Dask scheduler, given an address (``tcp://host:8786``) or a ``distributed.Client``."""

    def __init__(self, scheduler: Any, timeout: float = 5.0) -> None:
        distributed = _import_distributed()
        if isinstance(scheduler, distributed.Client):
            self.client = scheduler
            self._owns = False
        elif isinstance(scheduler, str) and scheduler:
            self.client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
            self._owns = True
        else:
            raise ArgumentTypeError("dask", f"expected a scheduler address or a distributed.Client, got {scheduler!r}")
        self.address = str(self.client.scheduler.address)
        self.timeout = timeout
        self._prev_done: tuple[float, int] | None = None
        self.rejected = 0  # workers whose reported values failed their bounds

    def read(self, interval: float) -> tuple[list[NodeSnapshot], DaskSummary]:
        """All worker snapshots and the scheduler summary, read now."""
        info = self.client.scheduler_info(**({"n_workers": -1} if _takes_n_workers(self.client) else {}))
        now = time.time()
        snaps = []
        for addr, worker in info.get("workers", {}).items():
            # What a scheduler says is network data too: bounded like every record read from Redis.
            try:
                snaps.append(checked(worker_snapshot(addr, worker, interval, now)))
            except (SchemaError, TypeError, ValueError) as exc:
                self.rejected += 1
                log.warning("dask worker %r skipped: %s", str(addr)[:64], exc)
        counts = self._counts(info)
        done = sum(counts.get(k, 0) for k in ("memory", "released", "erred"))
        rate = 0.0
        if self._prev_done is not None:
            then, before = self._prev_done
            rate = max(done - before, 0) / max(now - then, 1e-9)  # forgotten tasks leave the counts: clamp
        self._prev_done = (now, done)
        tasks = {k: int(counts.get(k, 0)) for k in TASK_STATES}
        return snaps, DaskSummary(self.address, len(snaps), tasks, round(rate, 3), now)

    def close(self) -> None:
        if self._owns:
            self.client.close()

    def _counts(self, info: dict[str, Any]) -> dict[str, int]:
        port = info.get("services", {}).get("dashboard")
        if not port:
            return {}
        host = urlsplit(self.address.replace("tcp://", "http://")).hostname or "127.0.0.1"
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/json/counts.json", timeout=self.timeout) as resp:
                data = orjson.loads(resp.read())
        except (OSError, ValueError) as exc:
            log.debug("dask counts unavailable: %s", exc)
            return {}
        return {k: int(v) for k, v in data.items() if isinstance(v, int | float)}


def _takes_n_workers(client: Any) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def worker_snapshot(address: str, worker: dict[str, Any], interval: float, now: float) -> NodeSnapshot:
    """One Dask worker as a snapshot (pure: the dict is what ``scheduler_info()`` returns per worker)."""
    metrics = worker.get("metrics", {})
    threads = int(worker.get("nthreads", 1)) or 1
    limit = int(worker.get("memory_limit") or 0)
    # A worker past its limit (before its nanny restarts it) reports more than the limit: shown as 100 %.
    used = max(int(metrics.get("memory", 0)), 0)
    used = min(used, limit) if limit else used
    net = metrics.get("host_net_io", {})
    disk = metrics.get("host_disk_io", {})
    name = worker.get("name", address)
    return NodeSnapshot(
        node=address if str(name) == address else f"dask:{name}",
        host=str(worker.get("host", "")),
        ip=str(worker.get("host", "")),
        time=float(metrics.get("time") or worker.get("last_seen") or now),
        cpu_count=threads,
        cpu_percent=round(min(float(metrics.get("cpu", 0.0)) / threads, 100.0), 2),
        load_1=0.0,
        load_5=0.0,
        load_15=0.0,
        mem_total_bytes=limit,
        mem_used_bytes=used,
        mem_available_bytes=max(limit - used, 0),
        swap_total_bytes=0,
        swap_used_bytes=0,
        disk_path=str(worker.get("local_directory", "")),
        disk_total_bytes=0,
        disk_used_bytes=0,
        disk_read_bps=float(disk.get("read_bps", 0.0)),
        disk_write_bps=float(disk.get("write_bps", 0.0)),
        net_rx_bps=float(net.get("read_bps", 0.0)),
        net_tx_bps=float(net.get("write_bps", 0.0)),
        uptime_s=0.0,
        interval_s=interval,
        threads=threads,
        source="dask",
        labels={"dask_address": address},
    )
