"""Rollup blocks as bytes: a compact record for Redis (and the memory store), and its validating decoder.

Why this encoding: a day of minute rows holds 1,440 x 18 fields x 3 statistics = 77,760 numbers. As JSON that is
~560 KB per node per day; the target is under 100 KB. A record is a msgpack header and one zlib stream of the
block's columns: row slots (uint8/uint16), sample counts (uint32) and the statistics as float32, column by
column, byte-shuffled (the first bytes of every value, then the second...), with each value rounded to 12
significant bits (relative error at most 2**-12, about 0.025 %: far below what a week's chart shows). Rounding
zeroes the low bytes, shuffling puts them together, and zlib then stores them for almost nothing; one day of
minute rows costs ~75 KB (``benchmarks/bench_history.py``). Rounding is monotonic, so min <= mean <= max holds
after it.

Every byte read back is untrusted (design principle 4): the header is typed by msgspec, the stream is inflated
to exactly the size the header implies and no further (a zip bomb costs nothing), and every row is checked:
slots increasing and inside the block, counts positive and bounded, each field's min <= mean <= max within its
declared bounds, or all three NaN. A record that fails raises :class:`~clusternb.model.SchemaError` with a
reason an operator can act on; the store counts it and deletes it.
"""

from __future__ import annotations

import itertools
import math
import struct
import sys
import zlib
from array import array
from operator import le
from typing import Any, Final

import msgspec

from clusternb import schema
from clusternb.model import BYTES_MAX, TIME_MAX, SchemaError
from clusternb.state.rollup import FIELDS, WIDTH, Block, Tier

#: Bumped when the record layout changes; a record of another format is rejected (and replaced on the next write).
FORMAT: Final = 1
#: The fields a record's columns are, in order: a record written with another field list is rejected.
FIELDS_TAG: Final = zlib.crc32(",".join(FIELDS).encode())
#: Low float32 mantissa bits dropped (23 - 11 kept + the implicit one: 12 significant bits).
DROPPED_BITS: Final = 12
#: Largest sample count of one row that a record may claim (a minute at 1 ms sampling is 60,000, an hour
#: 3.6 million). Far below ``2**32 / 60``: an hour row sums 60 minute rows, and must still fit its uint32.
COUNT_MAX: Final = 10_000_000
assert COUNT_MAX * 60 < 2**32
_HALF = 1 << (DROPPED_BITS - 1)
_MASK = (0xFFFFFFFF << DROPPED_BITS) & 0xFFFFFFFF
_FLOAT = array("f").itemsize  # 4 on every platform CPython runs on; checked below
assert _FLOAT == 4 and array("I").itemsize == 4 and array("H").itemsize == 2


def _grid(x: float) -> float:
    """``x`` as float32 with 12 significant bits, toward zero: a bound every stored value can be clipped to."""
    if math.isinf(x):
        return x
    f32 = struct.unpack("<f", struct.pack("<f", x))[0]
    if abs(f32) > abs(x):  # float32 rounded it away from zero: take the next one toward zero
        (bits,) = struct.unpack("<I", struct.pack("<f", f32))
        f32 = struct.unpack("<f", struct.pack("<I", bits - 1))[0]
    (bits,) = struct.unpack("<I", struct.pack("<f", f32))
    return float(struct.unpack("<f", struct.pack("<I", bits & _MASK))[0])


_DECLARED = [schema.field("metrics", name) for name in FIELDS]
_WHOLE = [f.unit == schema.BYTES or f.dtype == "Int64" for f in _DECLARED]
# A field declared without bounds still gets finite ones where it is a whole number (a frame casts it to
# int64): never negative, never past BYTES_MAX. Every metric field declares both today (tests check).
_LOW = [
    (0.0 if whole else -math.inf) if f.min is None else float(f.min) for f, whole in zip(_DECLARED, _WHOLE, strict=True)
]
_HIGH = [
    (float(BYTES_MAX) if whole else math.inf) if f.max is None else float(f.max)
    for f, whole in zip(_DECLARED, _WHOLE, strict=True)
]
_LOW_GRID = [_grid(x) for x in _LOW]
_HIGH_GRID = [_grid(x) for x in _HIGH]


class Header(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """What a record says about itself; the payload is the zlib stream of its columns."""

    format: int
    fields: int
    tier: str
    start: float
    rows: int
    payload: bytes


_DECODE = msgspec.msgpack.Decoder(Header)
_ENCODE = msgspec.msgpack.Encoder()


def _slot_code(tier: Tier) -> str:
    return "B" if tier.rows_per_block <= 256 else "H"


def rounded(block: Block) -> array[float]:
    """The block's values as stored: float32 rounded to 12 significant bits, within the fields' bounds."""
    rows = len(block)
    clipped = array("f")
    for c in range(WIDTH):
        low, high = _LOW_GRID[c // 3], _HIGH_GRID[c // 3]
        clipped.extend(min(max(x, low), high) for x in block.column(c))  # NaN passes through both
    bits = array("I", clipped.tobytes())
    # Rounding half away from zero on the magnitude; a bound on the grid stays put, so clipped values stay in.
    out = array("f", array("I", [(b + _HALF) & _MASK for b in bits]).tobytes())
    assert len(out) == WIDTH * rows
    return out


def encode(block: Block) -> bytes:
    """The record of ``block``."""
    raw = rounded(block).tobytes()
    shuffled = b"".join(raw[i::4] for i in range(4))  # the first bytes of every value, then the second...
    columns = (
        array(_slot_code(block.tier), block.slots).tobytes()
        + array("I", [min(c, COUNT_MAX) for c in block.counts]).tobytes()
        + shuffled
    )
    header = Header(FORMAT, FIELDS_TAG, block.tier.name, block.start, len(block), zlib.compress(columns, 6))
    return _ENCODE.encode(header)


def decode(record: bytes, node: str, tier: Tier, start: float) -> Block:
    """The block a record holds, checked as the module docstring says; ``SchemaError`` naming what is wrong.
    ``node``, ``tier``, ``start``: where the record was found (its key and field), which it must agree with.
    The values come back as float32 (``array("f")``)."""
    try:
        head = _DECODE.decode(record)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise SchemaError("not a rollup record") from None
    if head.format != FORMAT:
        raise SchemaError(f"other rollup format ({head.format!r})")
    if head.fields != FIELDS_TAG:
        raise SchemaError("rollup of another field list")
    if head.tier != tier.name or head.start != start or not 0 <= start <= TIME_MAX:
        raise SchemaError("rollup record is not the block its key names")
    rows, per_block = head.rows, tier.rows_per_block
    if not 0 < rows <= per_block:
        raise SchemaError(f"rollup block of {rows} rows (at most {per_block})")
    code = _slot_code(tier)
    head_size = rows * (array(code).itemsize + 4)
    size = head_size + rows * WIDTH * 4
    inflate = zlib.decompressobj()
    try:
        columns = inflate.decompress(head.payload, size)
    except zlib.error:
        raise SchemaError("rollup payload is not zlib") from None
    if len(columns) != size or not inflate.eof or inflate.unconsumed_tail:
        raise SchemaError("rollup payload is not the size its header says")
    slots = array(code, columns[: rows * array(code).itemsize]).tolist()
    counts = array("I", columns[rows * array(code).itemsize : head_size]).tolist()
    planes = columns[head_size:]
    n = rows * WIDTH
    raw = bytearray(4 * n)
    for i in range(4):
        raw[i::4] = planes[i * n : (i + 1) * n]
    values = array("f", bytes(raw))
    _check(slots, counts, values, rows, per_block)
    return Block(node, tier, start, slots, counts, values)


def _check(slots: list[int], counts: list[int], values: array[float], rows: int, per_block: int) -> None:
    if slots[-1] >= per_block or any(a >= b for a, b in itertools.pairwise(slots)):
        raise SchemaError("rollup rows out of order or outside their block")
    if min(counts) < 1 or max(counts) > COUNT_MAX:
        raise SchemaError("rollup row with an impossible sample count")
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        _check_values_numpy(numpy, values, rows)
    else:
        _check_values(values, rows)


def _check_values(values: array[float], rows: int) -> None:
    """Each field's min <= mean <= max within its bounds, or all three NaN: in plain Python, where numpy is not
    loaded (the agent, continuing a block it finds); ~0.3 ms for an hour of minute rows."""
    for f, name in enumerate(FIELDS):
        at = 3 * f * rows
        low, mean, high = (values[at + k * rows : at + (k + 1) * rows] for k in range(3))
        missing = sum(map(math.isnan, mean))
        if missing == rows:  # a field the node never had (no GPU): all three NaN
            if sum(map(math.isnan, low)) + sum(map(math.isnan, high)) != 2 * rows:
                raise SchemaError(f"rollup {name} with some of min/mean/max missing")
            continue
        if missing:  # rare: rows with and rows without the field
            kept = [i for i in range(rows) if not math.isnan(mean[i])]
            if sum(map(math.isnan, low)) + sum(map(math.isnan, high)) != 2 * missing or any(
                math.isnan(low[i]) or math.isnan(high[i]) for i in kept
            ):
                raise SchemaError(f"rollup {name} with some of min/mean/max missing")
            low, mean, high = (array("f", (col[i] for i in kept)) for col in (low, mean, high))
        elif any(map(math.isnan, low)) or any(map(math.isnan, high)):
            raise SchemaError(f"rollup {name} with some of min/mean/max missing")
        top = max(high)
        if not (min(low) >= _LOW[f] and top <= _HIGH[f] and top < math.inf):
            raise SchemaError(f"rollup {name} outside its bounds or min/mean/max out of order")
        if not (all(map(le, low, mean)) and all(map(le, mean, high))):
            raise SchemaError(f"rollup {name} outside its bounds or min/mean/max out of order")


def _check_values_numpy(np: Any, values: array[float], rows: int) -> None:
    """The same checks as :func:`_check_values`, vectorised: where numpy is loaded (every reader, since pandas
    is), ~15x faster, which a day of minute rows of 100 nodes (2,400 records) needs. Tests run both."""
    v = np.frombuffer(values, np.float32).reshape(len(FIELDS), 3, rows)
    missing = np.isnan(v)
    partial = missing.any(axis=1) & ~missing.all(axis=1)
    if partial.any():
        raise SchemaError(f"rollup {FIELDS[int(np.argwhere(partial)[0][0])]} with some of min/mean/max missing")
    low, mean, high = v[:, 0, :], v[:, 1, :], v[:, 2, :]
    lowest, highest = np.asarray(_LOW)[:, None], np.asarray(_HIGH)[:, None]
    with np.errstate(invalid="ignore"):
        bad = (low < lowest) | (high > highest) | np.isinf(high) | (low > mean) | (mean > high)
    if bad.any():
        name = FIELDS[int(np.argwhere(bad)[0][0])]
        raise SchemaError(f"rollup {name} outside its bounds or min/mean/max out of order")
