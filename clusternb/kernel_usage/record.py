"""Kernel records: what one Jupyter server says about one of its kernels, as frozen, typed, versioned data.

A server with the extension samples its kernels with its host (one sampler per node) and publishes one
:class:`KernelReport` per server: the node, the server's URL (never its token), the sample time and a
:class:`KernelStat` per kernel. Every field is declared here once, as the snapshot fields are
(:mod:`clusternb.model`): type, bounds and unit through ``msgspec.Meta``, and the description and faces of
each column of ``kernels()`` through :func:`~clusternb.declare.column`. The field catalogue reads them back
(:data:`clusternb.schema.KERNELS`).

Memory is the kernel's process *and its descendants* (a ``multiprocessing`` pool, a Dask LocalCluster started in
the notebook): RSS double-counts pages they share, so ``pss_bytes`` (proportional set size, shared pages split
among the processes that map them) is what sums truly across kernels; ``uss_bytes`` is what would be freed if
the kernel and its children exited.

A report read from Redis is untrusted: :func:`decode_report` checks every type and bound in one msgspec pass and
raises :class:`~clusternb.model.SchemaError` on anything else, which readers count and skip.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from clusternb.declare import CLI, DASHBOARD, PANEL, TABLES, column
from clusternb.model import Bytes, Count, Name, Path, Percent, SchemaError, Text, Time

#: Bumped whenever a field is added, removed or changes meaning. Readers skip reports of other versions.
KERNEL_SCHEMA_VERSION: Final = 1
#: Kernels one report may carry: a server with more publishes the first ones its kernel manager lists (a server
#: with over a thousand kernels is past what one notebook server runs; the cut keeps the report bounded).
KERNELS_MAX: Final = 1024

KernelId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Url = Annotated[str, msgspec.Meta(max_length=2048)]
State = Annotated[str, msgspec.Meta(max_length=32)]


class GPUUse(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """GPU memory a kernel's processes hold on one device (NVML's per-process accounting)."""

    index: Annotated[int, msgspec.Meta(ge=0, le=1024)]
    mem_used_bytes: Bytes


class KernelStat(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """One kernel of one server; measurements are None where the process could not be read (a kernel on a
    remote provisioner, a process that just exited)."""

    kernel_id: KernelId
    # The columns of kernels() after its index, in column order (the report adds node and server).
    path: Annotated[Path, column("notebook or console path, relative to the server's root (<NA>: hidden)",
                                 heading="path", table=TABLES)] = ""  # fmt: skip
    kernel_name: Annotated[Text, column("kernel spec name, e.g. python3", heading="kernel", table={CLI, DASHBOARD})]
    execution_state: Annotated[State, column("idle / busy / starting, as the server last heard", heading="state",
                                             table=TABLES)]  # fmt: skip
    last_activity: Annotated[Time, column("last message to or from the kernel", dtype="datetime64[ns, UTC]")]
    connections: Annotated[Count, column("clients connected to the kernel (open notebooks and consoles)")] = 0
    user: Annotated[Text, column("Unix user that owns the kernel's process")] = ""
    pid: Annotated[int, msgspec.Meta(ge=0, le=2**31), column("process id of the kernel on its node")] | None = None
    processes: Annotated[Count, column("the kernel's process and its descendants", heading="procs",
                                       table={CLI, DASHBOARD})] = 0  # fmt: skip
    cpu_percent: Annotated[
        Percent,
        column("CPU of the kernel and its children over the last interval, 0-100 of the whole node", heading="CPU %",
               table=TABLES, prometheus="cpu_percent"),
    ] | None = None  # fmt: skip
    rss_bytes: Annotated[Bytes, column("resident memory of the kernel and its children (shared pages counted "
                                       "in each)", heading="RSS", table={CLI, DASHBOARD})] | None = None  # fmt: skip
    pss_bytes: Annotated[
        Bytes,
        column("proportional memory of the kernel and its children (shared pages split)", heading="memory",
               table=TABLES, prometheus="memory_bytes"),
    ] | None = None  # fmt: skip
    uss_bytes: Annotated[Bytes, column("memory only the kernel and its children hold (freed if they exit)")] | None = (
        None
    )
    threads: Annotated[Count, column("threads of the kernel and its children")] | None = None
    gpu_mem_used_bytes: Annotated[Bytes, column("GPU memory of the kernel and its children, all devices",
                                                heading="GPU mem", table={PANEL, DASHBOARD},
                                                prometheus="gpu_memory_bytes")] | None = None  # fmt: skip
    gpus: Annotated[tuple[GPUUse, ...], msgspec.Meta(max_length=64)] = ()


class KernelReport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Every kernel of one server at one sample time: what a server publishes, one per server."""

    node: Name
    server: Url  # the server's URL with its base URL, never a token
    time: Time
    interval_s: Annotated[float, msgspec.Meta(gt=0.0, le=86_400.0)]
    kernels: Annotated[tuple[KernelStat, ...], msgspec.Meta(max_length=KERNELS_MAX)] = ()
    schema: int = KERNEL_SCHEMA_VERSION

    @property
    def publisher(self) -> str:
        """Who wrote the report: one per server, so two servers on one node never overwrite each other."""
        return f"{self.node} {self.server}"


_DECODE: Final = msgspec.json.Decoder(KernelReport)
_ENCODE: Final = msgspec.json.Encoder()


def encode_report(report: KernelReport) -> bytes:
    return _ENCODE.encode(report)


class OtherVersion(SchemaError):
    """A report another schema version wrote (a rolling upgrade): skipped and counted, never deleted, since its
    writer is alive and right by its own version."""


_VERSION_ONLY: Final = msgspec.json.Decoder(dict[str, object])


def decode_report(raw: bytes | str) -> KernelReport:
    """Parse, check and build a report; :class:`OtherVersion` for another schema version's, and
    :class:`SchemaError` for anything else this version did not write."""
    try:
        return _checked(_DECODE.decode(raw))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        version = _version_of(raw)
        if version is not None and version != KERNEL_SCHEMA_VERSION:
            raise OtherVersion(f"kernel report schema {version!r} is not {KERNEL_SCHEMA_VERSION}") from None
        raise SchemaError(str(exc)) from None


def _checked(report: KernelReport) -> KernelReport:
    if report.schema != KERNEL_SCHEMA_VERSION:
        raise OtherVersion(f"kernel report schema {report.schema!r} is not {KERNEL_SCHEMA_VERSION}")
    ids = [k.kernel_id for k in report.kernels]
    if len(set(ids)) != len(ids):
        raise SchemaError("a kernel id appears twice in one report")
    return report


def _version_of(raw: bytes | str) -> object:
    try:
        return _VERSION_ONLY.decode(raw).get("schema")
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
