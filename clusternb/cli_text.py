"""How the CLI writes for a terminal: table cells in the one unit convention, JSON for scripts, and text from
nodes made safe to print (control characters shown, never obeyed).

Apart from :mod:`clusternb.cli` (arguments, commands, exit statuses) because it is the CLI's face, as
:mod:`clusternb.widgets.views` is the panels'. Each column's format follows from its declaration
(:mod:`clusternb.schema`) through :func:`format_of`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from clusternb import schema, tables, units

if TYPE_CHECKING:
    import pandas as pd


# The table cells: clusternb.units (the convention every face shares), with the CLI's ASCII dash for a missing value.
_DASH = units.ASCII_DASH
human_bytes = functools.partial(units.human_bytes, missing_text=_DASH)
human_rate = functools.partial(units.human_rate, missing_text=_DASH)
pct = functools.partial(units.percent, missing_text=_DASH)
num = functools.partial(units.number, decimals=2, missing_text=_DASH)
integer = functools.partial(units.number, decimals=0, missing_text=_DASH)
seconds = functools.partial(units.seconds, missing_text=_DASH)
clock = functools.partial(units.clock, missing_text=_DASH)


#: How the CLI writes each format of :mod:`clusternb.tables`; None: as pandas prints it (text is made printable).
FORMATS: dict[str, Callable[[Any], str] | None] = {
    "time": clock,
    "percent": pct,
    "bytes": human_bytes,
    "rate": human_rate,
    "seconds": seconds,
    "integer": integer,
    "number": num,
}


def format_of(field: schema.Field) -> Callable[[Any], str] | None:
    """The writer of a column's cells, from its declaration in the field catalogue."""
    return FORMATS.get(tables.format_of(field))


#: Control characters (C0, DEL, C1) and the bidirectional overrides of "Trojan source": in a node's name, label
#: or message they would move the cursor, clear the screen or reorder what a person reads in a terminal.
_CONTROLS = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in (*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}


def printable(value: Any) -> str:
    """Text from a node, safe for a terminal: control characters shown escaped (``\\x1b``), never obeyed."""
    return str(value).translate(_CONTROLS)


def table(df: pd.DataFrame, columns: dict[str, Callable[[Any], str] | None]) -> str:
    """The named columns that exist, formatted; a time column without a formatter is a UTC clock, and every
    other text is :func:`printable` (names, labels and messages come from the network)."""
    frame = df.reset_index()
    view = frame[[c for c in columns if c in frame.columns]].copy()
    for name in view.columns:
        fmt = columns[name] or (clock if str(view[name].dtype).startswith("datetime64") else None)
        if fmt is not None:
            view[name] = view[name].map(fmt)
        elif not _is_number(view[name].dtype):
            view[name] = view[name].map(lambda v: printable(v) if isinstance(v, str) else v)
    return view.to_string(index=False) if len(view) else "(no rows)"


def _is_number(dtype: Any) -> bool:
    return getattr(dtype, "kind", "O") in "biuf"


def as_json(df: pd.DataFrame) -> str:
    """Records with ISO-8601 UTC times; NaN/NA become null."""
    out = df.reset_index() if df.index.name else df
    text = out.to_json(orient="records", date_format="iso", date_unit="us")
    return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
