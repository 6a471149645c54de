"""Snapshot records: what one sample of one node says, as frozen, typed, versioned data.

Everything that crosses a process boundary (Redis, the REST API, the cache) is built from these records and
their plain-dict form. ``from_dict`` validates instead of trusting: a record written by another schema version,
another program or a corrupted write raises :class:`SchemaError`, which readers count and skip.

Each field is declared here once, whole: its type and bounds (``msgspec.Meta``, checked where records are
decoded), its unit (carried by the type alias: ``Bytes``, ``Rate``, ``Percent``...), and for a column of
``workers()`` its description and the faces that show it (:func:`clusternb.declare.column`). The field
catalogue (:mod:`clusternb.schema`) reads these declarations back, and every face follows from it: adding a
numeric field is one line here and the line of the source that fills it.

The records are msgspec ``Struct``s (frozen, unknown fields forbidden) so that a JSON record read from Redis
is parsed, type-checked and built in one call in C (:func:`decode_snapshot_json`): 2 µs per record instead
of 20-30 µs for ``orjson.loads`` plus ``from_dict``, which is what a ``workers()`` over 10,000 nodes that all
published since the last read spends its time on.

They are also untracked by the cyclic garbage collector (msgspec ``gc=False``): a record holds only numbers,
strings, its label dict (str to str) and its GPU records, so it cannot be part of a reference cycle, and
10,000 freshly decoded records then cost the collector nothing (decoding them is a quarter faster, and no
later collection walks them). Do not put objects that could refer back to a record into ``labels``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Annotated, Any, Final, NamedTuple

import msgspec

from clusternb.declare import BYTES, CELSIUS, CLI, CORES, PANEL, PERCENT, RATE, SECONDS, TABLES, WATTS, column, unit

#: Bumped whenever a field is added, removed or changes meaning. Readers skip records of other versions.
SCHEMA_VERSION: Final = 1


class SchemaError(ValueError):
    """A record does not match this schema version (wrong version, missing or mistyped field)."""


#: Physical bounds, declared once: every record read from Redis (or any other process) is checked against them
#: where it is decoded, so no absurd number reaches a frame, a chart or a sum. Generous on purpose: a bound
#: rejects what no machine can report, never an unusual but real machine.
TIME_MAX: Final = 4_102_444_800.0  # 2100-01-01 UTC; also keeps every time well inside pandas' datetime64[ns]
BYTES_MAX: Final = 2**60  # 1 EiB per node and field: 2**13 such nodes still sum within int64
RATE_MAX: Final = 1e13  # bytes per second, 80 Tbit/s
COUNT_MAX: Final = 2**20  # CPUs, threads, cores of a quota
GPU_BYTES_MAX: Final = 2**50  # 1 PiB on one GPU (the largest hold ~2**37)
GPUS_MAX: Final = 64  # GPUs of one node: their memory sums to at most 2**56, within BYTES_MAX
LOAD_MAX: Final = 1e6
NAME_MAX: Final = 256  # node and host names (an FQDN is at most 253)

Time = Annotated[float, msgspec.Meta(ge=0.0, le=TIME_MAX, description="seconds since the epoch (UTC)")]
Bytes = Annotated[int, msgspec.Meta(ge=0, le=BYTES_MAX, extra=unit(BYTES))]
GPUBytes = Annotated[int, msgspec.Meta(ge=0, le=GPU_BYTES_MAX, extra=unit(BYTES))]
Rate = Annotated[float, msgspec.Meta(ge=0.0, le=RATE_MAX, extra=unit(RATE))]
Percent = Annotated[float, msgspec.Meta(ge=0.0, le=100.0, extra=unit(PERCENT))]
Count = Annotated[int, msgspec.Meta(ge=0, le=COUNT_MAX)]
CPUs = Annotated[float, msgspec.Meta(ge=0.0, le=COUNT_MAX, extra=unit(CORES))]  # a share of cores, as a quota
Load = Annotated[float, msgspec.Meta(ge=0.0, le=LOAD_MAX)]
Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=1e10, extra=unit(SECONDS))]
Interval = Annotated[float, msgspec.Meta(gt=0.0, le=86_400.0, extra=unit(SECONDS))]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX)]
Text = Annotated[str, msgspec.Meta(max_length=NAME_MAX)]
Path = Annotated[str, msgspec.Meta(max_length=4096)]
Labels = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=64)], Annotated[str, msgspec.Meta(max_length=NAME_MAX)]],
    msgspec.Meta(max_length=64),
]


class GPUStat(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One GPU as NVML reports it; fields NVML cannot read on a given card are ``None``."""

    index: Annotated[int, msgspec.Meta(ge=0, le=1024)]
    name: Text
    uuid: Text
    util_percent: Percent | None = None
    mem_total_bytes: GPUBytes | None = None
    mem_used_bytes: GPUBytes | None = None
    temperature_c: Annotated[float, msgspec.Meta(ge=-100.0, le=200.0, extra=unit(CELSIUS))] | None = None
    power_w: Annotated[float, msgspec.Meta(ge=0.0, le=100_000.0, extra=unit(WATTS))] | None = None

    def __post_init__(self) -> None:
        _at_most("GPU mem_used_bytes", self.mem_used_bytes, "mem_total_bytes", self.mem_total_bytes)


class NodeSnapshot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """One sample of one node.

    Host totals and container limits are reported side by side (``cpu_count`` beside ``cpu_limit``,
    ``mem_total_bytes`` beside ``mem_limit_bytes``) because a notebook in a container needs both: the limit
    is what it may use, the host total is what it shares. Rates are bytes per second over the interval
    since the previous sample of the same sampler (0.0 on the first sample).

    Types and bounds are checked where a record is decoded (:func:`decode_snapshot_json`,
    :meth:`from_dict`); the parts that compare two fields (used <= total where a total is known) on every
    construction too, so a source cannot build a record that readers elsewhere would reject.
    """

    node: Name
    time: Time  # sample time
    # The columns of workers(), in its column order (kw_only: a field with a default may stand anywhere).
    host: Annotated[Text, column("host name")]
    ip: Annotated[str, msgspec.Meta(max_length=64), column("primary IPv4 address")]
    source: Annotated[str, msgspec.Meta(max_length=16), column("local, agent or dask")] = "local"
    cpu_count: Annotated[Count, column("logical CPUs of the host", heading="cores", table={CLI, PANEL})]
    cpu_limit: Annotated[CPUs, column("CPU cores granted by a container quota (NaN: none)")] | None = None
    threads: Annotated[Count, column("worker threads (Dask workers)")] | None = None  # None for plain hosts
    cpu_percent: Annotated[
        Percent,
        column("CPU busy over the last interval, 0-100 across all CPUs", metric=True, prometheus="cpu_percent",
               heading="CPU %", table=TABLES),
    ]  # fmt: skip
    load_1: Annotated[
        Load, column("1-minute load average", metric=True, prometheus="load1", heading="load 1m", table=TABLES)
    ]
    load_5: Annotated[Load, column("5-minute load average", metric=True)]
    load_15: Annotated[Load, column("15-minute load average", metric=True)]
    mem_total_bytes: Annotated[
        Bytes, column("host memory (MemTotal)", prometheus="memory_total_bytes", heading="memory", table={CLI})
    ]
    mem_used_bytes: Annotated[
        Bytes,
        column("host memory in use (total - available)", metric=True, prometheus="memory_used_bytes",
               heading="mem used", table=TABLES),
    ]  # fmt: skip
    mem_available_bytes: Annotated[Bytes, column("host memory available to new work", metric=True)]
    mem_limit_bytes: Annotated[Bytes, column("container memory limit (<NA>: none)")] | None = None
    mem_cgroup_used_bytes: Bytes | None = None  # what the cgroup uses, when a limit applies
    swap_total_bytes: Annotated[Bytes, column("swap size")]
    swap_used_bytes: Annotated[Bytes, column("swap in use", metric=True)]
    disk_path: Annotated[Path, column("path whose filesystem is reported")]
    disk_total_bytes: Annotated[Bytes, column("filesystem size")]
    disk_used_bytes: Annotated[Bytes, column("filesystem space used", metric=True)]
    disk_read_bps: Annotated[Rate, column("disk reads", metric=True)]
    disk_write_bps: Annotated[Rate, column("disk writes", metric=True)]
    net_rx_bps: Annotated[
        Rate,
        column("network received (loopback excluded)", metric=True, prometheus="network_receive_bytes_per_second",
               heading="net rx", table=TABLES),
    ]  # fmt: skip
    net_tx_bps: Annotated[
        Rate,
        column("network sent (loopback excluded)", metric=True, prometheus="network_transmit_bytes_per_second",
               heading="net tx", table=TABLES),
    ]  # fmt: skip
    uptime_s: Annotated[Seconds, column("time since the host booted")]
    # How often this node is sampled; liveness thresholds derive from it.
    interval_s: Annotated[Interval, column("time between this node's samples")] = 2.0
    labels: Labels = {}  # msgspec gives each instance its own empty dict
    gpus: Annotated[tuple[GPUStat, ...], msgspec.Meta(max_length=GPUS_MAX)] = ()
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # msgspec calls this for every decoded record (10,000 on a busy read): one inline test on the good path,
        # the names of what failed only for a bad record.
        total, swap, disk = self.mem_total_bytes, self.swap_total_bytes, self.disk_total_bytes
        if (
            (total and (self.mem_used_bytes > total or self.mem_available_bytes > total))
            or (swap and self.swap_used_bytes > swap)
            or (disk and self.disk_used_bytes > disk)
        ):
            for used, of in _USED_OF:
                _at_most(used, getattr(self, used), of, getattr(self, of))

    # Derived percentages live here so alerts, queries and charts agree on one definition.
    @property
    def mem_used_percent(self) -> float:
        """Memory in use, as a percent of the container limit when one applies, else of the host."""
        total = self.mem_limit_bytes or self.mem_total_bytes
        used = self.mem_cgroup_used_bytes if self.mem_limit_bytes else self.mem_used_bytes
        return _percent(used or 0, total)

    @property
    def swap_used_percent(self) -> float:
        return _percent(self.swap_used_bytes, self.swap_total_bytes)

    @property
    def disk_used_percent(self) -> float:
        return _percent(self.disk_used_bytes, self.disk_total_bytes)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict (GPUs as a list of dicts, labels as a dict)."""
        out = {f.name: getattr(self, f.name) for f in _NODE_FIELDS}
        out["labels"] = dict(self.labels)
        out["gpus"] = [{g.name: getattr(gpu, g.name) for g in _GPU_FIELDS} for gpu in self.gpus]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeSnapshot:
        """Validate (types and bounds) and build; :class:`SchemaError` on anything this version did not write."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"snapshot must be a mapping, got {type(data).__name__}")
        version = data.get("schema")
        if version != SCHEMA_VERSION:
            raise SchemaError(f"snapshot schema {version!r} is not {SCHEMA_VERSION}")
        try:
            return msgspec.convert(dict(data), cls)
        except msgspec.ValidationError as exc:
            raise SchemaError(str(exc)) from None


#: Fields that cannot exceed another (where that total is known), checked on every construction and decode.
_USED_OF = (
    ("mem_used_bytes", "mem_total_bytes"),
    ("mem_available_bytes", "mem_total_bytes"),
    ("swap_used_bytes", "swap_total_bytes"),
    ("disk_used_bytes", "disk_total_bytes"),
)


def checked(snapshot: NodeSnapshot) -> NodeSnapshot:
    """``snapshot`` if its values are within their declared bounds (a constructor does not check them);
    :class:`SchemaError` naming the field otherwise. For records a source builds from network data (Dask)."""
    try:
        return msgspec.convert(msgspec.to_builtins(snapshot), NodeSnapshot)
    except msgspec.ValidationError as exc:
        raise SchemaError(str(exc)) from None


def _at_most(name: str, used: int | None, total_name: str, total: int | None) -> None:
    """``used <= total`` where a total is known (0 or None: unknown, as for a Dask worker without a limit)."""
    if used is not None and total and used > total:
        raise ValueError(f"{name} is more than {total_name}")


def _percent(used: float, total: float) -> float:
    return 100.0 * used / total if total > 0 else 0.0


class RecordField(NamedTuple):
    """A field of a record class: its name, its annotation as written (``"float"``, ``"int | None"``...)."""

    name: str
    type: str
    required: bool


def record_fields(cls: type[msgspec.Struct]) -> tuple[RecordField, ...]:
    """The fields of :class:`NodeSnapshot` or :class:`GPUStat`, in order (for validation and metric tables)."""
    hints = typing.get_type_hints(cls)  # Annotated bounds stripped: the plain type
    return tuple(RecordField(f.name, _type_name(hints[f.name]), f.required) for f in msgspec.structs.fields(cls))


def _type_name(tp: Any) -> str:
    """``float``, ``int | None``...: the annotation as written, without its bounds."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


_NODE_FIELDS = record_fields(NodeSnapshot)
_GPU_FIELDS = record_fields(GPUStat)
_DECODE_NODE = msgspec.json.Decoder(NodeSnapshot)


def decode_snapshot_json(raw: bytes) -> NodeSnapshot:
    """Parse, check and build a JSON record in one pass; :class:`SchemaError` on anything this version did not
    write (the same records :meth:`NodeSnapshot.from_dict` rejects; JSON cannot carry NaN or infinities)."""
    try:
        snap = _DECODE_NODE.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SchemaError(str(exc)) from None
    if snap.schema != SCHEMA_VERSION:
        raise SchemaError(f"snapshot schema {snap.schema!r} is not {SCHEMA_VERSION}")
    return snap


def decode_snapshots_json(records: Iterable[bytes]) -> list[NodeSnapshot]:
    """Every record, each parsed on its own, in one C-level pass; :class:`SchemaError` if any one is not a
    record of this version (all or nothing: the caller then decodes one by one to find and count them).

    For a read where most records changed: no Python loop per record (only the short ``__post_init__`` test
    of used against total, about 0.1 µs), which saves a quarter of the time :func:`decode_snapshot_json` in a
    loop takes over 10,000 records.
    """
    try:
        snaps = list(map(_DECODE_NODE.decode, records))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SchemaError(str(exc)) from None
    if snaps and set(map(_SCHEMA_OF, snaps)) != {SCHEMA_VERSION}:
        raise SchemaError(f"a snapshot schema is not {SCHEMA_VERSION}")
    return snaps


_SCHEMA_OF = attrgetter("schema")
