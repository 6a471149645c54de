"""Where servers leave their kernel reports and every reader finds them: in memory, or in Redis for a cluster.

One report per server (:attr:`KernelReport.publisher <clusternb.kernel_usage.record.KernelReport.publisher>`),
replaced at each sample: only the newest state of each server's kernels is kept, so the space is bounded by
the number of servers times :data:`~clusternb.kernel_usage.record.KERNELS_MAX`, and a kernel that was shut down is
gone from the next report.

In Redis the reports are the fields of one hash (under the shared-state hash tag). Reading is data only,
validated where it enters (:func:`~clusternb.kernel_usage.record.decode_report`): a report that fails is skipped,
counted under ``kernels`` in :class:`~clusternb.rejects.Rejections` and deleted if it is still the same bytes.
A report older than ``expire_after`` (its server stopped without saying so) is skipped and deleted too.

:class:`MirroredBoard` is the cluster-mode board: it writes to Redis and to memory, reads Redis, and while
Redis is unreachable answers with this server's own kernels and the last view it had of the others. In
embedded mode a :class:`FileBoard` in Jupyter's runtime directory takes Redis's place, so a notebook's kernel
sees the kernels of its own servers on this host.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from clusternb.kernel_usage.record import KernelReport, OtherVersion, decode_report, encode_report
from clusternb.model import SchemaError
from clusternb.redisio.errors import Unavailable
from clusternb.redisio.link import RedisLink
from clusternb.redisio.scripts import LinkScript
from clusternb.rejects import Rejections, node_of
from clusternb.state.redis_scripts import PRUNE_HASH_VALUES, TAG

KEY = f"{TAG}:kernels"
#: The largest report file read: above what the record's bounds allow (1,024 kernels with 4,096-character
#: paths of 2-byte characters encode to about 9.2 MB), so no valid report is refused.
FILE_MAX_BYTES = 24 * 2**20
#: How far ahead of this host's clock a report may be dated (a wrong clock would keep a stopped server listed).
CLOCK_SKEW_MAX = 300.0


def expired(report: KernelReport, now: float, expire_after: float) -> bool:
    """Not renewed for ``expire_after`` seconds, or three of its server's own intervals if that is longer (a
    server sampling every minute is not dropped between two of its reports)."""
    return report.time < now - max(expire_after, 3.0 * report.interval_s)


#: One report, in one step: a key of another type under our name (which would make every write fail) is
#: deleted first. KEYS: the hash. ARGV: the publisher, the report.
PUT_REPORT = """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
"""


class KernelBoard(Protocol):
    """What the queries read and the sampler writes. ``in_process``: reading touches only this process's memory
    (no Redis, no file), so a server may read it on its event loop."""

    in_process: bool

    def put(self, report: KernelReport) -> None: ...

    def remove(self, publisher: str) -> None: ...

    def reports(self) -> list[KernelReport]: ...


class MemoryBoard:
    """This process's reports (embedded mode, and the local half of :class:`MirroredBoard`)."""

    in_process = True

    def __init__(self, expire_after: float) -> None:
        self.expire_after = expire_after
        self._reports: dict[str, KernelReport] = {}
        self._lock = threading.Lock()

    def put(self, report: KernelReport) -> None:
        with self._lock:
            self._reports[report.publisher] = report

    def remove(self, publisher: str) -> None:
        with self._lock:
            self._reports.pop(publisher, None)

    def reports(self) -> list[KernelReport]:
        now = time.time()
        with self._lock:
            return [r for r in self._reports.values() if not expired(r, now, self.expire_after)]


class RedisBoard:
    """The cluster's reports, one hash field per server."""

    in_process = False

    def __init__(self, link: RedisLink, rejections: Rejections, expire_after: float) -> None:
        self.link = link
        self.rejections = rejections
        self.expire_after = expire_after
        self._prune = LinkScript(link, PRUNE_HASH_VALUES)
        self._put = LinkScript(link, PUT_REPORT)

    def put(self, report: KernelReport) -> None:
        self._put([KEY], [report.publisher, encode_report(report)])

    def remove(self, publisher: str) -> None:
        self.link.call(lambda r: r.hdel(KEY, publisher))

    def reports(self) -> list[KernelReport]:
        found: Any = self.link.call(lambda r: r.hgetall(KEY) if r.type(KEY) in (b"hash", "hash") else {})
        now = time.time()
        out = []
        for raw in found.values():
            try:
                report = decode_report(raw)
            except OtherVersion as exc:  # a rolling upgrade: its writer is alive and right by its own version
                self.rejections.add("kernels", node_of(raw), str(exc))
                continue
            except SchemaError as exc:
                self.rejections.add("kernels", node_of(raw), str(exc))
                self._drop(raw)
                continue
            if report.time > now + CLOCK_SKEW_MAX:
                self.rejections.add("kernels", report.node, "report dated ahead of this host's clock")
                self._drop(raw)
            elif expired(report, now, self.expire_after):  # its server stopped without removing it
                self._drop(raw)
            else:
                out.append(report)
        return out

    def _drop(self, raw: bytes) -> None:
        """Delete the field that still holds ``raw``, in one step (a newer report from its server stays)."""
        self.link.attempt(lambda r: self._prune.run_on(r, [KEY], [raw]))


class FileBoard:
    """Embedded mode: each server's report is a file in Jupyter's runtime directory, which that user's kernels
    read, so ``kernels()`` in a notebook shows the kernels of the servers on this host without Redis.

    The runtime directory is the user's own (mode 0700, where Jupyter keeps its connection files), so a user sees
    only their servers' kernels here. A write is atomic (a temporary file, then a rename); reading validates as
    from Redis, with the same skips, counts and deletions, and reads at most :data:`FILE_MAX_BYTES` of a file.
    """

    in_process = False

    PATTERN = "clusternb-kernels-*.json"

    def __init__(self, directory: Path, rejections: Rejections, expire_after: float) -> None:
        self.directory = directory
        self.rejections = rejections
        self.expire_after = expire_after

    def _path(self, publisher: str) -> Path:
        digest = hashlib.sha256(publisher.encode()).hexdigest()[:16]
        return self.directory / self.PATTERN.replace("*", digest)

    def put(self, report: KernelReport) -> None:
        path = self._path(report.publisher)
        with contextlib.suppress(OSError):  # a read-only or missing runtime directory: memory only (MirroredBoard)
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_bytes(encode_report(report))
            os.replace(temporary, path)

    def remove(self, publisher: str) -> None:
        with contextlib.suppress(OSError):
            self._path(publisher).unlink()

    def reports(self) -> list[KernelReport]:
        now = time.time()
        out = []
        for path in sorted(self.directory.glob(self.PATTERN)):
            try:
                with path.open("rb") as file:
                    raw = file.read(FILE_MAX_BYTES + 1)
                if len(raw) > FILE_MAX_BYTES:
                    raise SchemaError(f"report file larger than {FILE_MAX_BYTES} bytes")
                report: KernelReport | None = decode_report(raw)
            except OSError:  # removed meanwhile
                continue
            except OtherVersion as exc:
                self.rejections.add("kernels", node_of(raw[:4096]), str(exc))
                continue
            except SchemaError as exc:
                self.rejections.add("kernels", node_of(raw[:4096]), str(exc))
                report = None
            if report is None or expired(report, now, self.expire_after) or report.time > now + CLOCK_SKEW_MAX:
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            out.append(report)
        return out


class MirroredBoard:
    """Redis for the cluster's view, memory for this server's own reports and for outages."""

    in_process = False

    def __init__(self, primary: RedisBoard | FileBoard, local: MemoryBoard) -> None:
        self.primary = primary
        self.local = local
        self._last: list[KernelReport] = []

    def put(self, report: KernelReport) -> None:
        self.local.put(report)
        with contextlib.suppress(Unavailable):  # counted by the link; the report is in the local board
            self.primary.put(report)

    def remove(self, publisher: str) -> None:
        self.local.remove(publisher)
        with contextlib.suppress(Unavailable):
            self.primary.remove(publisher)

    def reports(self) -> list[KernelReport]:
        """The primary's reports, with this process's own where the primary lacks them (a write it refused);
        while Redis is unreachable, the last view of the others."""
        with contextlib.suppress(Unavailable):
            self._last = self.primary.reports()
        now = time.time()
        self._last = [r for r in self._last if not expired(r, now, self.local.expire_after)]  # an outage ages it
        mine = {r.publisher: r for r in self.local.reports()}
        return [*mine.values(), *(r for r in self._last if r.publisher not in mine)]
