"""Snapshot records: what one sample of one node says, as frozen, typed, versioned data.

Everything that crosses a process boundary (Redis, the REST API, the cache) is built from these records and
their plain-dict form. ``from_dict`` validates instead of trusting: a record written by another schema version,
another program or a corrupted write raises :class:`SchemaError`, which readers count and skip.

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

import math
from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Any, Final, NamedTuple

import msgspec

#: Bumped whenever a field is added, removed or changes meaning. Readers skip records of other versions.
SCHEMA_VERSION: Final = 1


class SchemaError(ValueError):
    """A record does not match this schema version (wrong version, missing or mistyped field)."""


class GPUStat(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One GPU as NVML reports it; fields NVML cannot read on a given card are ``None``."""

    index: int
    name: str
    uuid: str
    util_percent: float | None = None
    mem_total_bytes: int | None = None
    mem_used_bytes: int | None = None
    temperature_c: float | None = None
    power_w: float | None = None


class NodeSnapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One sample of one node.

    Host totals and container limits are reported side by side (``cpu_count`` beside ``cpu_limit``,
    ``mem_total_bytes`` beside ``mem_limit_bytes``) because a notebook in a container needs both: the limit
    is what it may use, the host total is what it shares. Rates are bytes per second over the interval
    since the previous sample of the same sampler (0.0 on the first sample).
    """

    node: str
    host: str
    ip: str
    time: float  # sample time, seconds since the epoch (UTC)
    cpu_count: int
    cpu_percent: float
    load_1: float
    load_5: float
    load_15: float
    mem_total_bytes: int
    mem_used_bytes: int
    mem_available_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    disk_path: str
    disk_total_bytes: int
    disk_used_bytes: int
    disk_read_bps: float
    disk_write_bps: float
    net_rx_bps: float
    net_tx_bps: float
    uptime_s: float
    interval_s: float = 2.0  # how often this node is sampled; liveness thresholds derive from it
    cpu_limit: float | None = None  # cores granted by a cgroup quota, None when unlimited
    mem_limit_bytes: int | None = None  # cgroup memory limit, None when unlimited
    mem_cgroup_used_bytes: int | None = None  # what the cgroup uses, when a limit applies
    threads: int | None = None  # worker threads (Dask workers); None for plain hosts
    source: str = "local"  # local | agent | dask
    labels: Mapping[str, str] = {}  # msgspec gives each instance its own empty dict
    gpus: tuple[GPUStat, ...] = ()
    schema: int = SCHEMA_VERSION

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
        """Validate and build; raises :class:`SchemaError` on anything this version did not write."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"snapshot must be a mapping, got {type(data).__name__}")
        version = data.get("schema")
        if version != SCHEMA_VERSION:
            raise SchemaError(f"snapshot schema {version!r} is not {SCHEMA_VERSION}")
        kwargs = _check_fields(data, _NODE_FIELDS, _NODE_TYPES, "snapshot")
        labels = kwargs.get("labels", {})
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise SchemaError("snapshot field 'labels' must map strings to strings")
        kwargs["labels"] = dict(labels)
        gpus = kwargs.get("gpus", [])
        if not isinstance(gpus, list | tuple):
            raise SchemaError("snapshot field 'gpus' must be a list")
        if not all(isinstance(g, Mapping) for g in gpus):
            raise SchemaError("each entry of 'gpus' must be a mapping")
        kwargs["gpus"] = tuple(GPUStat(**_check_fields(g, _GPU_FIELDS, _GPU_TYPES, "gpu")) for g in gpus)
        return cls(**kwargs)


def _percent(used: float, total: float) -> float:
    return 100.0 * used / total if total > 0 else 0.0


class RecordField(NamedTuple):
    """A field of a record class: its name, its annotation as written (``"float"``, ``"int | None"``...)."""

    name: str
    type: str
    required: bool


def record_fields(cls: type[msgspec.Struct]) -> tuple[RecordField, ...]:
    """The fields of :class:`NodeSnapshot` or :class:`GPUStat`, in order (for validation and metric tables)."""
    return tuple(RecordField(f.name, cls.__annotations__[f.name], f.required) for f in msgspec.structs.fields(cls))


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

    For a read where most records changed: no Python code runs per record, which saves a quarter of the
    time :func:`decode_snapshot_json` in a loop takes over 10,000 records.
    """
    try:
        snaps = list(map(_DECODE_NODE.decode, records))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SchemaError(str(exc)) from None
    if snaps and set(map(_SCHEMA_OF, snaps)) != {SCHEMA_VERSION}:
        raise SchemaError(f"a snapshot schema is not {SCHEMA_VERSION}")
    return snaps


_SCHEMA_OF = attrgetter("schema")


# Accepted JSON types per field. ints are accepted where floats are expected (JSON has one number type).
_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_INT = (int, type(None))


def _types_for(cls_fields: tuple[Any, ...]) -> dict[str, tuple[type, ...]]:
    table: dict[str, tuple[type, ...]] = {}
    for f in cls_fields:
        ann = str(f.type)
        if ann == "str":
            table[f.name] = (str,)
        elif ann == "int":
            table[f.name] = (int,)
        elif ann == "float":
            table[f.name] = _NUM
        elif ann == "int | None":
            table[f.name] = _OPT_INT
        elif ann == "float | None":
            table[f.name] = _OPT_NUM
        else:  # labels, gpus: checked by from_dict itself
            table[f.name] = (object,)
    return table


_NODE_TYPES = _types_for(_NODE_FIELDS)
_GPU_TYPES = _types_for(_GPU_FIELDS)


def _check_fields(
    data: Mapping[str, Any],
    cls_fields: tuple[Any, ...],
    types: dict[str, tuple[type, ...]],
    what: str,
) -> dict[str, Any]:
    names = {f.name for f in cls_fields}
    unknown = set(data) - names
    if unknown:
        raise SchemaError(f"{what} has unknown fields {sorted(unknown)}")
    out: dict[str, Any] = {}
    for f in cls_fields:
        if f.name not in data:
            if f.required:
                raise SchemaError(f"{what} is missing field {f.name!r}")
            continue
        value = data[f.name]
        allowed = types[f.name]
        # bool is an int subclass; a bool where a number belongs is a foreign record, not a 1.
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise SchemaError(f"{what} field {f.name!r} has type {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaError(f"{what} field {f.name!r} is not finite")
        out[f.name] = value
    return out
