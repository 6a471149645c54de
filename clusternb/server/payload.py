"""Pure encoding of query results into the REST/WebSocket JSON body, its gzip form and its change hash.

The body of every data endpoint has one shape (documented in README and ``openapi.json``)::

    {"query": "workers", "as_of": "2024-05-01T12:00:00.000000Z", "content_hash": "9f…", "data_hash": "41…",
     "index": "node", "columns": ["node", "status", …], "data": [{"node": "n1", "status": "online", …}, …]}

Times are ISO-8601 UTC strings, missing values (NaN, <NA>, NaT) are ``null``, categoricals are their labels.
``content_hash`` is the query cache's hash of the frame (the ETag); ``data_hash`` leaves out the columns that
only say how old the data is (``age_s``, ``as_of``, ``data_age_s``), so the WebSocket can push on real change
only instead of on every clock tick.

Encoding a 1,000-node frame takes milliseconds, so :class:`EncodedCache` keeps the JSON and gzip bytes of each
query key's newest result: each distinct result is encoded and compressed once, whatever the request rate.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
from tornado import web

#: Columns that change with the clock alone; excluded from ``data_hash``.
VOLATILE_COLUMNS = frozenset({"age_s", "as_of", "data_age_s"})
#: Bodies smaller than this are sent as they are (the same threshold as tornado's GZipContentEncoding).
GZIP_MIN_BYTES = 1024
#: zlib's fast strategy (levels 1-3): on the 1,000-node workers body (~860 KiB) level 3 saves ~90 % in ~3 ms,
#: level 6 ~91 % in ~7 ms. A new body is compressed whenever the data changes (every second on a busy cluster),
#: on a thread that holds the GIL the event loop needs, so the 1 % is not worth the time.
GZIP_LEVEL = 3
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, slots=True)
class Encoded:
    """One response body, ready to send: JSON bytes, gzip bytes (None when too small to bother), hashes."""

    body: bytes
    gzipped: bytes | None
    etag: str
    data_hash: str
    created: float

    @property
    def gzip_ratio(self) -> float:
        """Fraction of bytes gzip saves (0 when not compressed)."""
        return 0.0 if self.gzipped is None else 1.0 - len(self.gzipped) / len(self.body)


def iso_time(epoch: float) -> str:
    """Epoch seconds as an ISO-8601 UTC string with a ``Z`` suffix."""
    return datetime.fromtimestamp(epoch, UTC).strftime(_TIME_FORMAT)


def frame_columns(frame: pd.DataFrame) -> tuple[str | None, list[str], list[list[Any]]]:
    """(index name, column names, column values as JSON-ready lists); a named index becomes the first column."""
    index_name = None if frame.index.name is None else str(frame.index.name)
    table = frame.reset_index() if index_name is not None else frame
    names = [str(c) for c in table.columns]
    values = [_json_values(table[c]) for c in table.columns]
    return index_name, names, values


def _json_values(series: pd.Series) -> list[Any]:
    """JSON-ready Python values of one column, by the cheapest route per dtype (numpy's ``tolist`` where it
    can: going through ``astype(object)`` cost ~0.2 ms a column, half of encoding a 1,000-node frame)."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        stamps = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
        missing = np.isnat(stamps).tolist()
        texts = np.datetime_as_string(stamps, unit="us").tolist()
        return [None if gap else text + "Z" for text, gap in zip(texts, missing, strict=True)]
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        values = series.to_numpy()
        out: list[Any] = values.tolist()
        if dtype.kind == "f":
            missing = np.isnan(values)
            if missing.any():
                return [None if gap else v for v, gap in zip(out, missing.tolist(), strict=True)]
        return out
    # Nullable (Int64, boolean, string, categorical, object): <NA>/NaN/None all become None.
    out = series.to_numpy(dtype=object).tolist()
    present = series.notna().to_numpy()
    if present.all():
        return out
    return [v if ok else None for v, ok in zip(out, present.tolist(), strict=True)]


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class BodyExtras:
    """What a body may carry besides its frame: more top-level ``fields``, and ``stable``, what ``data_hash``
    covers instead of the frame's non-volatile columns (None: those columns), for a value whose columns move
    without news (the cache's status, whose hit counters change with every read)."""

    fields: dict[str, Any]
    stable: Any = None


def encode_frame(
    query: str, frame: pd.DataFrame, content_hash: str | None, created: float, extras: BodyExtras | None = None
) -> Encoded:
    """Build the documented body for a frame, gzip it when it is worth it, and hash what is not volatile.

    ``content_hash`` None: hash the body here (values that do not come from the query cache).
    """
    index_name, names, values = frame_columns(frame)
    stable = None if extras is None else extras.stable
    if stable is None:
        stable = {n: v for n, v in zip(names, values, strict=True) if n not in VOLATILE_COLUMNS}
    data_hash = _digest(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS))
    records = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
    head = {"query": query, "as_of": iso_time(created), "content_hash": content_hash, "data_hash": data_hash}
    tail = {**(extras.fields if extras else {}), "index": index_name, "columns": names, "data": records}
    if content_hash is None:
        content_hash = _digest(orjson.dumps(tail, option=orjson.OPT_SERIALIZE_NUMPY))
        head["content_hash"] = content_hash
    body = orjson.dumps({**head, **tail}, option=orjson.OPT_SERIALIZE_NUMPY)
    return finish(body, etag_of(content_hash, created), data_hash, created)


def etag_of(content_hash: str, created: float) -> str:
    """The ETag of a body: its content and its ``as_of``, so a client revalidating an unchanged result after a
    recomputation gets the new ``as_of`` (a 200) rather than a 304 that keeps an old time on screen."""
    return f"{content_hash}-{round(created * 1000):x}"


def finish(body: bytes, etag: str, data_hash: str, created: float) -> Encoded:
    """Attach the gzip form at :data:`GZIP_LEVEL`."""
    gzipped = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
    return Encoded(body, gzipped, etag, data_hash, created)


def vary_on_encoding(handler: web.RequestHandler) -> None:
    """Say the body depends on ``Accept-Encoding``, once.

    tornado's ``GZipContentEncoding`` transform (on when the server has ``compress_response``) appends
    ``Accept-Encoding`` to ``Vary`` itself, so setting it too would send ``Vary: Accept-Encoding, Accept-Encoding``.
    """
    if not any(t is web.GZipContentEncoding for t in handler.application.transforms):
        handler.set_header("Vary", "Accept-Encoding")


def accepts_gzip(accept_encoding: str) -> bool:
    """True when an ``Accept-Encoding`` header allows gzip (``gzip;q=0`` refuses it)."""
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params or float(q) > 0
            except ValueError:
                return True
    return False


#: Bytes (JSON plus gzip) of encoded bodies :class:`EncodedCache` keeps by default. A cap on entries alone was
#: not a cap on memory: the metrics body of a 10-minute chart grows with the cluster and its window (21 nodes
#: at 1 s: ~1.6 MB JSON, 10,000 nodes at 2 s: hundreds of MB), and in the soak (issue 17 item 6) 64 entries,
#: mostly outdated versions of that one topic, held 56 MiB after 5 minutes and kept growing.
ENCODED_CACHE_MAX_BYTES = 64 * 2**20


class EncodedCache:
    """A small thread-safe LRU of query key -> :class:`Encoded`, bounded in entries and in bytes.

    Query threads fill it and the event loop reads it, hence the lock; entries are immutable once stored.
    A stored body is given only for the same content hash and the same computation (``created``): one recomputed
    with the same content is encoded anew, so ``as_of`` always says when the answer was computed, never when the
    content first was. So only the newest encoding of a key can ever be asked for again: a new one replaces
    it, and the cache holds at most one body per key (``size`` keys) and ``max_bytes`` in all (JSON plus gzip,
    least recently used out first). A body larger than ``max_bytes`` is not kept: it is encoded for each
    computation's first request (``DataService`` computes each topic once however many ask at a time).
    """

    def __init__(self, size: int = 64, max_bytes: int = ENCODED_CACHE_MAX_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[str, Encoded]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.encodes = 0

    def get(self, key: str, content_hash: str, created: float) -> Encoded | None:
        with self._lock:
            item = self._entries.get(key)
            if item is None or item[0] != content_hash or item[1].created != created:
                return None
            self._entries.move_to_end(key)
            return item[1]

    def put(self, key: str, content_hash: str, encoded: Encoded) -> None:
        size = _size(encoded)
        with self._lock:
            self.encodes += 1
            old = self._entries.pop(key, None)
            if old is not None:
                if old[1].created > encoded.created:  # a slower thread's older result: the newer one stays
                    self._entries[key] = old
                    return
                self._bytes -= _size(old[1])
            if size > self.max_bytes:
                return
            self._entries[key] = (content_hash, encoded)
            self._bytes += size
            while len(self._entries) > self.size or self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= _size(dropped)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """JSON plus gzip bytes held now."""
        return self._bytes


def _size(encoded: Encoded) -> int:
    return len(encoded.body) + (len(encoded.gzipped) if encoded.gzipped is not None else 0)
