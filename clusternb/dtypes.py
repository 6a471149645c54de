"""Columns of exactly the declared dtype, built by the cheapest exact conversion (the frames' one I/O-free
hot path after decoding).

pandas converts a tuple of 10,000 numbers or strings element by element, checking each; the values reaching
here were validated when their records were decoded, so numbers go through ``np.fromiter`` and strings
through Arrow, both in C. Kept apart from :mod:`clusternb.frames` (what each frame holds) because this is how
any column is built, whatever it means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from clusternb.columns import Column


def typed(
    data: Mapping[str, Any], columns: Sequence[Column], index: pd.Index, order: np.ndarray | None = None
) -> pd.DataFrame:
    """Build a frame whose columns and dtypes are exactly ``columns``, whatever ``data`` held (sequences or
    arrays, taken by position: a Series is not aligned on its index); ``order`` (positions) puts the rows of
    every column in the order of ``index``."""
    arrays = {col.name: column(data.get(col.name, []), col.dtype) for col in columns}
    if order is not None:
        arrays = {name: a[order] if isinstance(a, np.ndarray) else a.take(order) for name, a in arrays.items()}
    return pd.DataFrame(arrays, index=index, copy=False)


def column(values: Any, dtype: Any) -> Any:
    """``values`` as an array of exactly ``dtype``, by the cheapest conversion that is exact.

    pandas converts a tuple of 10,000 numbers or strings element by element, checking each; the values here
    were validated when their records were decoded, so numbers go through ``np.fromiter`` and strings through
    Arrow, both in C. Anything unusual (a None among integers, NaN among strings) falls back to pandas.
    """
    extension = isinstance(dtype, pd.api.extensions.ExtensionDtype) or dtype in ("Int64", "string")
    if isinstance(values, pd.api.extensions.ExtensionArray | pd.Index | np.ndarray) and _exactly(values.dtype, dtype):
        return values.array if isinstance(values, pd.Index) else values
    if _is_time(dtype):
        return pd.array(pd.to_datetime(values, utc=True), dtype=dtype)  # any time zone, or naive (taken as UTC)
    if isinstance(values, pd.api.extensions.ExtensionArray | pd.Index | np.ndarray | pd.Series):
        values = values.tolist()  # e.g. python-backed strings, NaN-for-missing str: convert like a list
    if dtype == "string":
        return strings(values)
    if dtype == "float64":
        try:
            return floats(values)
        except (TypeError, ValueError):  # pd.NA and the like: pandas knows them
            return pd.Series(values, dtype=dtype).to_numpy()
    if dtype in ("Int64", "int64"):
        found = _ints(values, dtype)
        if found is not None:
            return found
    return pd.array(values, dtype=dtype) if extension else np.asarray(values, dtype=dtype)


def _ints(values: Sequence[Any], dtype: str) -> Any:
    """Integers through ``np.fromiter``; None among them is ``Int64``'s missing value (None: let pandas try)."""
    try:
        exact = np.fromiter(values, dtype=np.int64, count=len(values))
    except (TypeError, ValueError, OverflowError):  # None (missing) among the values
        return _nullable_ints(values) if dtype == "Int64" else None
    return pd.arrays.IntegerArray(exact, np.zeros(len(exact), bool)) if dtype == "Int64" else exact


def _exactly(have: Any, want: Any) -> bool:
    """Same dtype, storage and missing-value marker: pandas' ``==`` calls ``str`` and python-backed strings
    equal to ``"string"``."""
    target = _PANDAS_DTYPES.get(want) if isinstance(want, str) else want
    if target is None:
        target = _PANDAS_DTYPES[want] = pd.api.types.pandas_dtype(want)
    return bool(have == target) and repr(have) == repr(target)


_PANDAS_DTYPES: dict[str, Any] = {}


def strings(values: Sequence[Any]) -> Any:
    try:
        return pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string()))
    except (pa.ArrowException, TypeError, ValueError):  # not all str (None is fine): let pandas convert
        return pd.array(values, dtype="string")


def _nullable_ints(values: Sequence[Any]) -> Any:
    """Ints with None for missing into an ``Int64`` array, in C; anything else through pandas."""
    n = len(values)
    if values.count(None) == n:  # a column nobody reports (no container limit anywhere): C only
        return missing_ints(n)
    if not all(v is None or type(v) is int for v in values):
        return pd.array(values, dtype="Int64")
    mask = np.fromiter((v is None for v in values), dtype=bool, count=n)
    data = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=n)
    return pd.arrays.IntegerArray(data, mask)


def missing_ints(n: int) -> Any:
    return pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))


def floats(values: Sequence[Any]) -> np.ndarray:
    """Numbers with None for missing into float64 (NaN), in C."""
    n = len(values)
    try:
        return np.fromiter(values, dtype="float64", count=n)
    except TypeError:
        if values.count(None) == n:
            return np.full(n, math.nan)
        return np.fromiter((math.nan if v is None else v for v in values), dtype="float64", count=n)


def _is_time(dtype: Any) -> bool:
    return isinstance(dtype, pd.DatetimeTZDtype)
