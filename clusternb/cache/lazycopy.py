"""Copy-on-access JSON values: a cache hit copies one level of the value; the rest is copied as it is reached.

A memory entry keeps its decoded JSON value as a *frozen* tree: :class:`FrozenDict` and :class:`FrozenList`,
dict and list subclasses whose mutating methods raise ``TypeError``. A caller gets :func:`thaw` of it: a
:class:`LazyDict` or :class:`LazyList`, a shallow copy of the top level whose container children are still the
frozen, shared ones. Reaching a child through the Python API (``v[k]``, ``.get``, ``.pop``, ``.setdefault``,
``.values()``, ``.items()``, iteration of a list, slicing, ``copy``, ``dict(v)``, ``{**v}``) first replaces it
by the caller's own copy, made the same way. So a caller may change whatever it reaches, and what it changes is
its own; the next caller gets the cached value unchanged. Small parts (at most :data:`SMALL` dicts and lists,
such as one record of a list) are copied whole when reached, into plain ``dict`` and ``list`` objects, so
reading them costs nothing more than before.

A few C paths read children without a Python call: the JSON encoders, ``==``, ``repr``, ``in``,
``dict.values(v)`` called on the class. They only read. A change made through one of them reaches a frozen
container and raises ``TypeError``: the cache itself can never be changed. ``copy.deepcopy`` and pickling give
plain ``dict`` and ``list`` objects.

Why (benchmarks/bench_cache.py, 98 worker records, 23 KB of JSON): a hit decoded the whole value, ~90 µs, more
than aiocache's whole hit (~17 µs); it now costs ~1.8 µs. A caller that then reads every field pays ~285 µs in
all, against ~260 µs with the full decode: iterating a list of small records copies them all at once.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable
from typing import Any, NoReturn, SupportsIndex


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(
        "this cached value is shared by every caller and cannot be changed; "
        "reach it through the value the cache returned (each caller's own copy) or use copy.deepcopy()"
    )


class _Plain:
    """Mixin of every container here: ``copy.deepcopy`` gives plain ``dict`` and ``list`` objects."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return plain(self)


class FrozenDict(_Plain, dict[Any, Any]):
    """A shared, read-only dict of a cached value (the entry's own copy)."""

    __slots__ = ()
    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse
    __init__ = _refuse  # dict.__init__ again would add keys

    def copy(self) -> Any:
        return thaw(self)

    __copy__ = copy

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return dict, (plain(self),)


class FrozenList(_Plain, list[Any]):
    """A shared, read-only list of a cached value (the entry's own copy)."""

    __slots__ = ()
    __setitem__ = __delitem__ = append = extend = insert = pop = remove = reverse = sort = clear = _refuse
    __iadd__ = __imul__ = __init__ = _refuse

    def copy(self) -> Any:
        return thaw(self)

    __copy__ = copy

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return list, (plain(self),)


class _FrozenLeafDict(FrozenDict):
    """A frozen dict without container children: it thaws to a plain dict."""

    __slots__ = ()


class _FrozenLeafList(FrozenList):
    """A frozen list without container children: it thaws to a plain list."""

    __slots__ = ()


class LazyDict(_Plain, dict[Any, Any]):
    """A caller's dict whose container children are copied from the shared ones when first reached."""

    __slots__ = ("_thawed",)
    _thawed: bool

    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        make = _THAW.get(type(value))
        if make is None:
            return value
        value = make(value)
        dict.__setitem__(self, key, value)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - self[key] thaws; dict.get would not

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else dict.setdefault(self, key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        return _own(dict.pop(self, key, *default))

    def popitem(self) -> tuple[Any, Any]:
        key, value = dict.popitem(self)
        return key, _own(value)

    def values(self) -> Any:
        self._thaw_all()
        return dict.values(self)

    def items(self) -> Any:
        self._thaw_all()
        return dict.items(self)

    def __iter__(self) -> Any:
        # Overriding it (even unchanged) makes dict(v), {**v}, v | w and update(v) read through __getitem__.
        return dict.__iter__(self)

    def copy(self) -> LazyDict:
        return LazyDict(dict.copy(self))  # children still frozen stay so in both: each thaws its own

    __copy__ = copy

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return dict, (dict.copy(self),)

    def _thaw_all(self) -> None:
        try:
            if self._thawed:
                return
        except AttributeError:
            pass
        for key, value in dict.items(self):
            make = _THAW.get(type(value))
            if make is not None:
                dict.__setitem__(self, key, make(value))
        self._thawed = True


class LazyList(_Plain, list[Any]):
    """A caller's list whose container children are copied from the shared ones when first reached."""

    __slots__ = ("_source", "_thawed")
    _thawed: bool
    _source: _FrozenPackedList

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            self._thaw_all()
            return list.__getitem__(self, index)
        value = list.__getitem__(self, index)
        make = _THAW.get(type(value))
        if make is None:
            return value
        value = make(value)
        list.__setitem__(self, index, value)
        return value

    def __iter__(self) -> Any:
        self._thaw_all()
        return list.__iter__(self)

    def __reversed__(self) -> Any:
        self._thaw_all()
        return list.__reversed__(self)

    def pop(self, index: SupportsIndex = -1) -> Any:
        return _own(list.pop(self, index))

    def __add__(self, other: Any) -> Any:
        self._thaw_all()
        return list.__add__(self, other)

    def __radd__(self, other: Any) -> Any:
        if not isinstance(other, list):
            return NotImplemented
        self._thaw_all()
        return list.__add__(list(other), list.copy(self))

    def __mul__(self, count: SupportsIndex) -> Any:
        self._thaw_all()
        return list.__mul__(self, count)

    __rmul__ = __mul__

    def copy(self) -> LazyList:
        return LazyList(list.copy(self))  # children still frozen stay so in both: each thaws its own

    __copy__ = copy

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return list, (list.copy(self),)

    def _thaw_all(self) -> None:
        try:
            if self._thawed:
                return
        except AttributeError:
            pass
        try:
            source: Any = self._source
        except AttributeError:
            source = None
        whole = None
        for index, item in enumerate(list.__iter__(self)):
            make = _THAW.get(type(item))
            if make is None:
                continue
            if source is not None and index < len(source) and list.__getitem__(source, index) is item:
                if whole is None:  # every record at once: one C call instead of one per record
                    whole = marshal.loads(source.packed)
                own = whole[index]  # a copy of this very item (the caller may have reordered the list)
            else:
                own = make(item)
            list.__setitem__(self, index, own)
        self._thawed = True


def _own(value: Any) -> Any:
    make = _THAW.get(type(value))
    return value if make is None else make(value)


class _FrozenSmallDict(FrozenDict):
    """A frozen dict of at most :data:`SMALL` containers: it thaws whole, from ``packed`` (marshal)."""

    __slots__ = ("packed",)
    packed: bytes


class _FrozenSmallList(FrozenList):
    """A frozen list of at most :data:`SMALL` containers: it thaws whole, from ``packed`` (marshal)."""

    __slots__ = ("packed",)
    packed: bytes


class _FrozenPackedList(FrozenList):
    """A frozen list above :data:`SMALL` whose items are all small: it thaws lazily, but a caller's iteration
    copies all its items from ``packed`` at once."""

    __slots__ = ("packed",)
    packed: bytes


def _lazy_packed(value: _FrozenPackedList) -> LazyList:
    out = LazyList(value)
    out._source = value
    return out


def _unpack(value: Any) -> Any:
    return marshal.loads(value.packed)  # bytes this process made from a decoded JSON value, never from outside


#: A part of at most this many dicts and lists is copied whole when first reached (by marshal, in C) rather
#: than level by level: for a record of a few nested dicts and lists that is cheaper than the lazy copy, so
#: a caller that reads all of a value pays about what a full decode cost, and one that reads a part, less.
SMALL = 32

#: How each frozen type becomes a caller's own copy.
_THAW: dict[type, Callable[[Any], Any]] = {
    FrozenDict: LazyDict,
    FrozenList: LazyList,
    _FrozenPackedList: _lazy_packed,
    _FrozenSmallDict: _unpack,
    _FrozenSmallList: _unpack,
    _FrozenLeafDict: dict,
    _FrozenLeafList: list,
}


def freeze(value: Any) -> Any:
    """The shared, frozen tree of a decoded JSON value (dicts and lists; anything else is kept as is)."""
    frozen = _freeze(value)[0]
    # The top level thaws lazily even when small: a hit then costs one shallow copy (~0.3 µs, against ~0.7 µs
    # to unpack a small value whole), and a caller that reads one field pays for no more.
    if type(frozen) is _FrozenSmallDict:
        top: Any = dict.__new__(FrozenDict)
        dict.update(top, frozen)
        return top
    if type(frozen) is _FrozenSmallList:
        top = list.__new__(FrozenList)
        list.extend(top, frozen)
        return top
    return frozen


def _freeze(value: Any) -> tuple[Any, int]:
    """(frozen value, how many dicts and lists it holds, itself included). Scalars are kept without a call: a
    miss freezes every container once: ~1 µs each, ~0.9 ms for the 98 worker records (their encoding: 65 µs)."""
    count = 1
    frozen: Any
    if type(value) is dict:
        items = {}
        for key, child in value.items():
            if type(child) is dict or type(child) is list:
                items[key], n = _freeze(child)
                count += n
            else:
                items[key] = child
        frozen = dict.__new__(_frozen_type(count, _FrozenLeafDict, _FrozenSmallDict, FrozenDict))
        dict.update(frozen, items)
    elif type(value) is list:
        children = []
        small = True
        for child in value:
            if type(child) is dict or type(child) is list:
                part, n = _freeze(child)
                count += n
                small = small and n <= SMALL
                children.append(part)
            else:
                children.append(child)
        kind = _frozen_type(count, _FrozenLeafList, _FrozenSmallList, FrozenList)
        frozen = list.__new__(_FrozenPackedList if kind is FrozenList and small else kind)
        list.extend(frozen, children)
    else:
        return value, 0
    if count > 1 and (count <= SMALL or type(frozen) is _FrozenPackedList):
        frozen.packed = marshal.dumps(value)
    return frozen, count


def _frozen_type(count: int, leaf: type, small: type, lazy: type) -> type:
    return leaf if count == 1 else small if count <= SMALL else lazy


def thaw(value: Any) -> Any:
    """A caller's own copy of a frozen value: one level now, the rest on access (scalars as they are)."""
    return _own(value)


def plain(value: Any) -> Any:
    """A deep copy made only of plain dicts and lists."""
    if isinstance(value, dict):
        return {key: plain(child) for key, child in dict.items(value)}
    if isinstance(value, list):
        return [plain(child) for child in list.__iter__(value)]
    return value  # JSON scalars are immutable
