"""Safe, versioned encoding of cache entries: JSON (orjson) for plain data, Arrow IPC for pandas objects.

Layout of an encoded entry (all that is ever stored in Redis)::

    b"CNB" | format version (1 byte) | kind (1 byte) | created (8-byte float, big-endian) |
    content hash (16 bytes, BLAKE2b of the payload) | payload

Nothing here can execute code: JSON and Arrow IPC are data formats, and the header is checked before the
payload is touched. Anything that does not match (garbage, a pickle, another format version, a value
written by another program) raises :class:`DecodeError`, which the cache counts as an error and a miss.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import pandas as pd
import pyarrow as pa

from clusternb.cache.lazycopy import freeze, thaw
from clusternb.model import TIME_MAX

MAGIC: Final = b"CNB"
FORMAT_VERSION: Final = 1
_HEADER = struct.Struct(">3sBcd16s")  # magic, version, kind, created, digest
KIND_JSON: Final = b"j"
KIND_FRAME: Final = b"f"
KIND_SERIES: Final = b"s"
_IMMUTABLE = (type(None), bool, int, float, str)
#: Marks an entry that keeps no decoded value (read from Redis: decoded for its first caller only).
UNSET: Final[Any] = type("Unset", (), {"__repr__": lambda self: "UNSET"})()


class DecodeError(ValueError):
    """Bytes that are not a cache entry of this format version."""


class EncodeError(TypeError):
    """A value the cache cannot store safely (not JSON data and not a pandas object)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached result: the value, its encoded payload and the hash consumers use to detect change.

    ``value`` is the entry's own decoded value, never handed to a caller except one that asked to share it;
    each other caller gets its own copy (see :meth:`value_for_caller`). ``fresh`` holds a value just decoded
    from the payload (an entry read from Redis) that nobody holds yet: the first caller takes it as is.
    """

    kind: bytes
    payload: bytes
    content_hash: str
    created: float
    value: Any = UNSET
    fresh: list[Any] = field(default_factory=list, compare=False, repr=False)

    def value_for_caller(self, share: bool = False) -> Any:
        """A value the caller may mutate freely without changing the cache; with ``share``, the entry's own
        value (one object for every sharing caller, which none of them may mutate)."""
        if self.fresh:
            try:
                return self.fresh.pop()  # atomic under the GIL: one caller gets it
            except IndexError:  # another thread took it first
                pass
        value = self.value
        if value is UNSET:  # a value read from Redis, which its first caller took: a fresh decode
            return _decode_payload(self.kind, self.payload)
        if share or type(value) in _IMMUTABLE:
            return value
        if self.kind == KIND_JSON:
            return thaw(value)  # one level now, the rest as the caller reaches it
        return value.copy(deep=not copy_on_write())

    def to_bytes(self) -> bytes:
        digest = bytes.fromhex(self.content_hash)
        return _HEADER.pack(MAGIC, FORMAT_VERSION, self.kind, self.created, digest) + self.payload

    @property
    def size(self) -> int:
        return _HEADER.size + len(self.payload)


def make_entry(value: Any, created: float) -> Entry:
    """Encode ``value``; raises :class:`EncodeError` for values that cannot be stored safely."""
    keep: Any
    if isinstance(value, pd.DataFrame):
        kind, payload, keep = KIND_FRAME, _frame_bytes(value), value.copy(deep=True)
    elif isinstance(value, pd.Series):
        kind, payload, keep = KIND_SERIES, _frame_bytes(value.to_frame(name=_series_name(value))), value.copy()
    else:
        try:
            payload = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError as exc:
            raise EncodeError(f"cannot cache a {type(value).__name__}: {exc}") from None
        # The entry's own value is the decoded payload, equal to what every caller gets (a tuple comes back a
        # list), frozen: callers get copies of it as they reach its parts (see lazycopy), or share it read-only.
        kind, keep = KIND_JSON, value if type(value) in _IMMUTABLE else freeze(orjson.loads(payload))
    digest = hashlib.blake2b(payload, digest_size=16).hexdigest()
    return Entry(kind, payload, digest, created, keep)


def entry_from_bytes(data: bytes | str, decode: bool = False) -> Entry:
    """Check the header and wrap the payload; with ``decode`` the value is decoded now (and validated)."""
    if not isinstance(data, bytes) or len(data) < _HEADER.size:
        raise DecodeError("not a clusternb cache entry (too short)")
    magic, version, kind, created, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError("not a clusternb cache entry (bad magic)")
    if version != FORMAT_VERSION:
        raise DecodeError(f"cache entry format {version} is not {FORMAT_VERSION}")
    if kind not in (KIND_JSON, KIND_FRAME, KIND_SERIES):
        raise DecodeError(f"unknown cache entry kind {kind!r}")
    if not 0.0 <= created <= TIME_MAX:  # NaN fails too: its time is shown as "as of"
        raise DecodeError("cache entry has an impossible creation time")
    payload = bytes(data[_HEADER.size :])
    if hashlib.blake2b(payload, digest_size=16).digest() != digest:
        raise DecodeError("cache entry payload does not match its hash (truncated or corrupted)")
    value: Any = UNSET
    fresh = []
    if decode or kind == KIND_JSON:
        decoded = _decode_payload(kind, payload)  # validates the payload now, not in the caller's hands
        if type(decoded) in _IMMUTABLE:
            value = decoded
        else:  # nobody holds it yet: its first caller takes it, and saves a second decode
            fresh.append(decoded)
    return Entry(kind, payload, digest.hex(), created, value, fresh)


def kept_entry_from_bytes(data: bytes | str) -> Entry:
    """An entry read from Redis that keeps its decoded value, as an entry made in this process does (the near
    cache's copy): each caller then gets its own copy of it, made as cheaply as from a memory entry."""
    entry = entry_from_bytes(data, decode=True)
    if entry.value is not UNSET:  # an immutable JSON value
        return entry
    decoded = entry.fresh.pop()
    keep = freeze(decoded) if entry.kind == KIND_JSON else decoded
    return Entry(entry.kind, entry.payload, entry.content_hash, entry.created, keep)


def copy_on_write() -> bool:
    """Whether pandas copies on write, so a shallow copy of a frame is a copy no caller can change through the
    pandas API: always from pandas 3 on; on pandas 2 only where ``mode.copy_on_write`` is set to True."""
    return _PANDAS_3 or _cow_option()


_PANDAS_3: Final = int(pd.__version__.split(".", 1)[0]) >= 3


def _cow_option() -> bool:
    """pandas 2's switch (read per call: it may be set at any time; pandas 3 warns that it is gone)."""
    return pd.options.mode.copy_on_write is True


def _decode_payload(kind: bytes, payload: bytes) -> Any:
    try:
        if kind == KIND_JSON:
            return orjson.loads(payload)
        table = pa.ipc.open_stream(payload).read_all()
        frame: pd.DataFrame = table.to_pandas()
        meta = table.schema.metadata or {}
        if meta.get(_INDEX_DTYPE) == b"string":
            frame.index = frame.index.astype("string")  # Arrow would hand back pandas' default str dtype
        for column, (categories, ordered) in orjson.loads(meta.get(_CATEGORIES, b"{}")).items():
            # An empty frame carries no dictionary batch, so Arrow alone would lose unused categories.
            frame[column] = frame[column].astype(pd.CategoricalDtype(categories, ordered=ordered))
        if kind == KIND_SERIES:
            series: pd.Series = frame.iloc[:, 0]
            if series.name == _NO_NAME:
                series.name = None
            return series
        return frame
    except (orjson.JSONDecodeError, pa.ArrowException, ValueError, IndexError) as exc:
        raise DecodeError(f"cache entry payload does not decode: {exc}") from None


_NO_NAME = "__clusternb_unnamed__"
_INDEX_DTYPE = b"clusternb.index_dtype"
_CATEGORIES = b"clusternb.categories"


def _series_name(series: pd.Series) -> Any:
    return _NO_NAME if series.name is None else series.name


#: Frames whose Arrow buffers exceed this are written with LZ4-compressed buffers, which pyarrow's IPC reader
#: decompresses transparently (every pyarrow wheel has LZ4; a build without it fails to read such an entry,
#: which the cache then counts as an error and recomputes, like any undecodable entry).
#: For a 10,000-node workers() frame (3.9 MB) LZ4 costs ~2.5 ms to write and ~1 ms to read, and halves
#: what Redis stores, sends and what the content hash covers: a SET of 3.9 MB took 7.4 ms, of 1.8 MB 1.4 ms.
COMPRESS_ABOVE: Final = 256 * 1024
_LZ4 = pa.ipc.IpcWriteOptions(compression="lz4" if pa.Codec.is_available("lz4") else None)
_PLAIN = pa.ipc.IpcWriteOptions()


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    try:
        # One thread below 100,000 rows: handing a few columns of 10,000 values to a pool costs more than it saves.
        table = pa.Table.from_pandas(frame, preserve_index=True, nthreads=1 if len(frame) < 100_000 else None)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise EncodeError(f"cannot cache this DataFrame safely: {exc}") from None
    meta = dict(table.schema.metadata or {})
    meta[_INDEX_DTYPE] = str(frame.index.dtype).encode()
    categories = {
        str(name): [dtype.categories.tolist(), bool(dtype.ordered)]
        for name, dtype in frame.dtypes.items()
        if isinstance(dtype, pd.CategoricalDtype)
    }
    if categories:
        meta[_CATEGORIES] = orjson.dumps(categories, option=orjson.OPT_SERIALIZE_NUMPY)
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    options = _LZ4 if table.nbytes > COMPRESS_ABOVE else _PLAIN
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
