"""The workers tables of the faces (CLI, panel, dashboard), read from the field catalogue.

Which columns a face's workers table shows, under which heading and in which format, follows from each field's
declaration in :mod:`clusternb.schema` (``table``, ``heading``, unit and dtype). Each face only maps a format
name to its own writer: :mod:`clusternb.units` in the CLI and the panel, ``units.js`` in the dashboard, which
receives :func:`dashboard_columns` with its page. A new field that names a face in its ``table`` appears there
with no other edit.

No pandas here: the CLI imports this module before it knows whether it needs pandas.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from clusternb import schema

#: The format of a unit's numbers; any other number is an ``integer`` or a ``number`` by its dtype.
_BY_UNIT: Final = {schema.PERCENT: "percent", schema.BYTES: "bytes", schema.RATE: "rate", schema.SECONDS: "seconds"}
#: Every format a face must know how to write.
FORMATS: Final = ("category", "time", "percent", "bytes", "rate", "seconds", "integer", "number", "text")


def format_of(field: schema.Field) -> str:
    """How a face writes ``field``'s values: one of :data:`FORMATS`, by its dtype and unit."""
    if field.dtype == schema.CATEGORY:
        return "category"
    if field.dtype == schema.TIME:
        return "time"
    if field.unit in _BY_UNIT:
        return _BY_UNIT[field.unit]
    if field.dtype in ("Int64", "int64"):
        return "integer"
    return "number" if field.dtype == "float64" else "text"


def workers_table(face: str) -> tuple[schema.Field, ...]:
    """The columns of ``face``'s workers table (one of :data:`schema.TABLES`), after the node name: the
    workers fields that name the face, in catalogue order, times ("when") after the values ("what")."""
    return _table(schema.WORKERS, face)


def kernels_table(face: str) -> tuple[schema.Field, ...]:
    """The columns of ``face``'s kernels table, after the kernel id, chosen as :func:`workers_table` chooses."""
    return _table(schema.KERNELS, face)


def _table(fields: tuple[schema.Field, ...], face: str) -> tuple[schema.Field, ...]:
    if face not in schema.TABLES:
        raise KeyError(f"no table on {face!r}; faces: {sorted(schema.TABLES)}")
    chosen = [f for f in fields if face in f.table]
    return tuple(sorted(chosen, key=lambda f: f.dtype == schema.TIME))  # stable: catalogue order otherwise


def css_class(field: schema.Field) -> str:
    """The class of the column's dashboard cells: its heading as a slug (``CPU %`` -> ``cpu``)."""
    return re.sub(r"[^a-z0-9]+", "-", field.heading.lower()).strip("-")


def dashboard_columns(fields: tuple[schema.Field, ...] | None = None) -> list[dict[str, str]]:
    """A dashboard table (the workers table by default), as its page receives it: name, heading, format and
    cell class of each column."""
    return [
        {"name": f.name, "heading": f.heading, "format": format_of(f), "class": css_class(f)}
        for f in (workers_table(schema.DASHBOARD) if fields is None else fields)
    ]


def dashboard_columns_json() -> str:
    """:func:`dashboard_columns` as JSON that is safe inside a ``<script type="application/json">``."""
    return script_json(dashboard_columns())


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside a ``<script type="application/json">`` (no ``</script>`` in it)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
