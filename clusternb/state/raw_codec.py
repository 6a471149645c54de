"""Raw history records, compact: each sample's JSON record deflated against a fixed dictionary.

Why: the raw window is where Redis memory goes. A sample's JSON record is 600-1,000 bytes, most of it field
names and the same text as the node's previous sample; in a sorted set it took ~855 bytes (a 2 s interval:
37 MB per node per day, 1.5 MB for the default hour). Deflate alone halves a record (there is little to find
in one record); deflate with a preset dictionary, a record of the same shape, finds every field name and most
of the punctuation there and stores ~200 bytes (~300 with two GPUs). The record is the same JSON, so one
decoder validates both forms (:func:`clusternb.model.decode_snapshot_json`), and readers get the same
``NodeSnapshot`` objects.

Format: the byte ``\\x01`` (no JSON text starts with it) then a raw deflate stream (no header) of the JSON,
compressed with :data:`ZDICT_1` preset. The dictionary is frozen: a record written today must inflate in any
later version, so a new dictionary would be a new format byte, never a change to this one. A record that
does not start with the byte is read as plain JSON (what clusternb wrote before). Inflating stops at
:data:`MAX_RECORD` bytes: a hostile stream costs nothing.
"""

from __future__ import annotations

import zlib
from typing import Final

from clusternb.model import SchemaError

#: The first byte of a compact record.
PACKED: Final = b"\x01"
#: The preset dictionary of format 1: a snapshot record of schema 1, as ``orjson`` writes it. Frozen.
ZDICT_1: Final = (
    b'{"node":"node","time":1700000000.0,"host":"node","ip":"10.0.0.1","source":"local","cpu_count":8,'
    b'"cpu_limit":null,"threads":null,"cpu_percent":12.5,"load_1":0.5,"load_5":0.4,"load_15":0.3,'
    b'"mem_total_bytes":17179869184,"mem_used_bytes":4294967296,"mem_available_bytes":12884901888,'
    b'"mem_limit_bytes":null,"mem_cgroup_used_bytes":null,"swap_total_bytes":2147483648,"swap_used_bytes":0,'
    b'"disk_path":"/","disk_total_bytes":107374182400,"disk_used_bytes":42949672960,"disk_read_bps":1000.0,'
    b'"disk_write_bps":2000.0,"net_rx_bps":3000.0,"net_tx_bps":4000.0,"uptime_s":3600.0,"interval_s":2.0,'
    b'"labels":{"rack":"a","role":"worker"},"gpus":[{"index":0,"name":"NVIDIA A100-SXM4-40GB","uuid":"GPU-",'
    b'"util_percent":50.0,"mem_total_bytes":42949672960,"mem_used_bytes":10737418240,"temperature_c":60.0,'
    b'"power_w":250.0}],"schema":1}'
)
#: Most bytes a record may inflate to (a snapshot with 64 labels and 64 GPUs is ~40 KB).
MAX_RECORD: Final = 64 * 1024
#: Inflated bytes a reader allows per sample kept (``max_samples`` of them) when it reads one key: a node with
#: 8 GPUs and a dozen labels writes ~3 KB. A key past ``max_samples * RECORD_BUDGET`` (a hostile writer's
#: records, each a few hundred bytes that inflate ~200x) is read newest first up to it, and the rest dropped.
RECORD_BUDGET: Final = 4 * 1024


def pack(record: bytes) -> bytes:
    """The compact form of a JSON snapshot record."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, ZDICT_1)
    return PACKED + deflate.compress(record) + deflate.flush()


def unpack(stored: bytes) -> bytes:
    """The JSON record a stored history record holds (plain JSON as it is); ``SchemaError`` if it is a compact
    record that does not inflate whole within :data:`MAX_RECORD` bytes."""
    if stored[:1] != PACKED:
        return stored
    inflate = zlib.decompressobj(-15, ZDICT_1)
    try:
        record = inflate.decompress(stored[1:], MAX_RECORD)
    except zlib.error:
        raise SchemaError("compact record does not inflate") from None
    if not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
        raise SchemaError("compact record is truncated, too large or followed by garbage")
    return record
