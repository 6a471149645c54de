"""The frame column tables: the field catalogue (:mod:`clusternb.schema`) with pandas dtypes.

The frame builders type their columns from these tables, the OpenAPI document and the README describe them, and
:func:`fields` (``clusternb.fields()``) shows them in a notebook. Nothing is declared here that the
catalogue already says: each table is one query's fields, each dtype the pandas form of the field's dtype.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from clusternb import schema

STATUS_DTYPE = pd.CategoricalDtype(schema.STATUS_ORDER, ordered=True)
SEVERITY_DTYPE = pd.CategoricalDtype(schema.SEVERITY_ORDER, ordered=True)
HEALTH_DTYPE = pd.CategoricalDtype(schema.HEALTH_ORDER, ordered=True)
ALERT_STATE_DTYPE = pd.CategoricalDtype(schema.ALERT_STATE_ORDER, ordered=True)
TIME_DTYPE = pd.DatetimeTZDtype("ns", "UTC")

_CATEGORIES = {tuple(d.categories): d for d in (STATUS_DTYPE, SEVERITY_DTYPE, HEALTH_DTYPE, ALERT_STATE_DTYPE)}


@dataclass(frozen=True, slots=True)
class Column:
    """One documented column: name (unit in the name), pandas dtype, what it means, its unit and bounds."""

    name: str
    dtype: Any
    doc: str
    unit: str = ""
    min: float | None = None
    max: float | None = None


def pandas_dtype(field: schema.Field) -> Any:
    """The dtype a frame gives ``field``'s column: a dtype name, or the shared categorical or time dtype."""
    if field.dtype == schema.CATEGORY:
        return _CATEGORIES.get(field.categories) or pd.CategoricalDtype(list(field.categories), ordered=True)
    return TIME_DTYPE if field.dtype == schema.TIME else field.dtype


def columns(fields: Iterable[schema.Field]) -> tuple[Column, ...]:
    """The column table of a query's fields, in order."""
    return tuple(Column(f.name, pandas_dtype(f), f.description, f.unit, f.min, f.max) for f in fields)


WORKER_COLUMNS = columns(schema.WORKERS)
#: Numeric per-sample fields that metrics() can return (``fields=`` picks among these).
METRIC_COLUMNS = columns(schema.METRICS)
METRIC_FIELDS = schema.METRIC_NAMES
#: The columns every metrics() frame starts with, before the chosen fields.
METRIC_HEAD_COLUMNS = columns(schema.METRIC_HEAD)
#: The columns a rolled-up metrics() frame adds after the chosen fields (their extremes), and its last column.
METRIC_SPREAD_COLUMNS = columns(schema.METRIC_SPREAD)
(METRIC_SAMPLES_COLUMN,) = columns((schema.METRIC_SAMPLES,))
STATUS_COLUMNS = columns(schema.STATUS)
ALERT_COLUMNS = columns(schema.ALERTS)
CACHE_COLUMNS = columns(schema.CACHE)
KERNEL_COLUMNS = columns(schema.KERNELS)


def dtype_text(dtype: Any) -> str:
    """A dtype as the README and :func:`fields` write it (an ordered categorical with its order)."""
    cats = getattr(dtype, "categories", None)
    return "category (ordered: " + " < ".join(cats) + ")" if cats is not None else str(dtype)


@functools.cache
def _fields_table() -> dict[str, list[Any]]:
    table: dict[str, list[Any]] = {k: [] for k in ("query", "name", "dtype", "unit", "description", "min", "max")}
    for query, fields in schema.QUERIES.items():
        for col in columns(fields):
            for key, value in zip(table, (query, col.name, dtype_text(col.dtype), col.unit, col.doc), strict=False):
                table[key].append(value)
            table["min"].append(col.min)
            table["max"].append(col.max)
    return table


def fields() -> pd.DataFrame:
    """What each column of the query results means: one row per column of ``workers()``, ``metrics()``,
    ``cluster_status()``, ``alerts()`` and ``cache_status()``.

    Columns: ``query`` (the function), ``name``, ``dtype`` (as the frame has it), ``unit`` (empty for counts
    and plain numbers; bytes are IEC, rates SI), ``description``, and ``min``/``max``, the bounds a value is
    validated against where it enters (NaN where the query computes the value). ``metrics()`` rows start with
    its ``time`` and ``node`` columns, then every field ``fields=`` can pick. A new frame on every call.

    >>> import clusternb
    >>> clusternb.fields().query("name == 'net_rx_bps'")
    """
    table = _fields_table()
    text = {k: pd.array(table[k], dtype="string") for k in ("query", "name", "dtype", "unit", "description")}
    bounds = {k: [math.nan if v is None else float(v) for v in table[k]] for k in ("min", "max")}
    return pd.DataFrame({**text, **bounds}).astype({"min": "float64", "max": "float64"})
