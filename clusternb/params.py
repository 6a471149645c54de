"""Each query's parameters, declared once; the Python check, REST/WebSocket parsing and OpenAPI follow from it.

Why: a parameter used to be written three times (the query's checks, the server's parsing, the OpenAPI
document) and the copies could drift, so a parameter added to a query would be refused by REST or left out
of the API description. Now a :class:`Param` states its name, kind, default, a one-line description and its
allowed values, and every face reads it:

- :meth:`Param.check`: the Python argument check the query builders run (``Client.metrics(since=...)``),
  which REST, the WebSocket and the CLI reach as well, since they all run the query;
- ``clusternb.server.service.make_topic``: the shapes a query string or a WebSocket subscription may give
  (lists repeated or comma-separated, ``active=yes``), per kind;
- ``clusternb.server.openapi``: the OpenAPI parameter objects, per kind;
- :class:`Call`: one query call with its parameters made hashable and put in declaration order, the value
  the panel poller deduplicates on and a server topic holds, so both normalise parameters the same way.

The kinds are few on purpose: each face handles every kind once, so a new parameter of a known kind needs
no code beyond its declaration (and the query that uses it).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from clusternb import arguments, frames
from clusternb.arguments import ArgumentError, ArgumentTypeError, shown

if TYPE_CHECKING:  # queries.py imports this module
    from clusternb.queries import Client, QueryResult


class Kind(Enum):
    """What a parameter's values are; each face knows how to read and describe every kind."""

    TIME = "duration or time"  #: "15m", seconds, a datetime or an ISO time: ``arguments.parse_time``
    NAMES = "names"  #: a name or a list of names (``single``: exactly one name)
    BOOLEAN = "boolean"  #: True or False (true/false/1/0/yes/no over REST)
    CHOICE = "choice"  #: one of ``choices``
    SIZE = "bytes"  #: a number of bytes or a text such as "300MB": ``arguments.parse_bytes``


@dataclass(frozen=True, slots=True)
class Param:
    """One query parameter. ``default`` is the Python default (None: not given); ``choices`` the allowed
    values (a CHOICE, or the names a NAMES parameter may list; empty: any name)."""

    name: str
    kind: Kind
    doc: str
    default: Any = None
    choices: tuple[str, ...] = ()
    single: bool = False  #: NAMES only: one name, not a list

    @property
    def repeated(self) -> bool:
        """Whether a query string may give it more than once (``node=a&node=b``)."""
        return self.kind is Kind.NAMES

    def check(self, value: Any, now: float) -> Any:
        """The value checked and normalised for the query: epoch seconds for a time, a tuple of distinct
        names, the bool or the choice itself. None means "not given" where that is the default, and stays
        None; where the default is a value (``since="15m"``, ``active=True``) None is checked like any other
        value, and refused. ``ArgumentError`` naming the parameter."""
        if value is None and self.default is None:
            return None
        if self.kind is Kind.TIME:
            return arguments.parse_time(value, now, self.name)
        if self.kind is Kind.BOOLEAN:
            if not isinstance(value, bool):
                raise ArgumentTypeError(self.name, f"expected True or False, got {shown(value)}")
            return value
        if self.kind is Kind.SIZE:
            return arguments.parse_bytes(self.name, value)
        if self.kind is Kind.CHOICE:
            if value not in self.choices:
                raise ArgumentError(self.name, f"{shown(value)} is not one of {list(self.choices)}")
            return value
        return self._names(value)

    def _names(self, value: Any) -> str | tuple[str, ...]:
        if self.single:
            if not isinstance(value, str):
                raise ArgumentTypeError(self.name, f"expected a {self.name} name, got {shown(value)}")
            return value
        chosen = tuple(dict.fromkeys(arguments.names(self.name, value)))  # keep order, drop repeats
        unknown = [n for n in chosen if n not in self.choices] if self.choices else []
        if unknown:
            noun = self.name.removesuffix("s")
            raise ArgumentError(self.name, f"unknown {noun}(s) {unknown[:5]!r}; allowed: {', '.join(self.choices)}")
        return chosen


#: Query name (``Client.query``) -> its parameters, in the order of the Python signature.
QUERY_PARAMS: dict[str, tuple[Param, ...]] = {
    "cluster": (),
    "workers": (),
    "metrics": (
        Param("since", Kind.TIME, "start of the window", default="15m"),
        Param("until", Kind.TIME, "end of the window (default: now)"),
        Param("node", Kind.NAMES, "node names (default: all)"),
        Param("fields", Kind.NAMES, "metric fields (default: all)", choices=frames.METRIC_FIELDS),
    ),
    "alerts": (
        Param("active", Kind.BOOLEAN, "true: pending and firing only; false: resolved too", default=True),
        Param("since", Kind.TIME, "alerts active at some point since then"),
        Param("severity", Kind.CHOICE, "alerts of this severity only", choices=tuple(frames.SEVERITY_ORDER)),
        Param("node", Kind.NAMES, "alerts about one node", single=True),
    ),
    "kernels": (
        Param("node", Kind.NAMES, "node names (default: all)"),
        Param(
            "path",
            Kind.NAMES,
            "notebook paths matching this pattern ('*' any text, e.g. 'projects/*.ipynb')",
            single=True,
        ),
        Param("min_memory", Kind.SIZE, "kernels using at least this much memory (PSS, or RSS where PSS is unknown)"),
        Param("me", Kind.BOOLEAN, "true: only kernels owned by the Unix user running the query", default=False),
    ),
}


def declared(query: str) -> tuple[Param, ...]:
    """The parameters of ``query`` (none for a name without any, such as the cache's status)."""
    return QUERY_PARAMS.get(query, ())


def check_arguments(query: str, now: float, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of ``query`` checked (:meth:`Param.check`), in declaration order; a missing one takes
    its default, an undeclared one is an ``ArgumentError`` that names it."""
    params = declared(query)
    allowed = [p.name for p in params]
    for name in values:
        if name not in allowed:
            raise ArgumentError(shown(name)[1:-1], f"unknown parameter for {query}; allowed: {allowed}")
    return {p.name: p.check(values.get(p.name, p.default), now) for p in params}


@dataclass(frozen=True, slots=True)
class Call:
    """A query by name with hashable parameters (lists made tuples, in declaration order), so equal calls
    compare and hash equal: one computation and one encoding for the server, one run per panel tick.
    The values are not checked here: the query checks them when it runs (:func:`check_arguments`)."""

    name: str
    params: tuple[tuple[str, Hashable], ...] = ()

    @classmethod
    def of(cls, name: str, **params: Any) -> Call:
        """The call of ``name`` with ``params``: declared ones in declaration order, any other after them
        by name (left for the query to refuse)."""
        order = {p.name: i for i, p in enumerate(declared(name))}
        items = sorted(params.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
        return cls(name, tuple((k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in items))

    def params_dict(self) -> dict[str, Any]:
        """The parameters as keyword arguments and JSON: tuples become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.params}

    def run(self, client: Client, held: QueryResult | None = None, holding: bool = False) -> QueryResult:
        """Run the query through the client's cache (``held`` back, uncopied, while it is the cache's entry;
        ``holding``: the caller holds results, see :meth:`~clusternb.queries.Client.query`)."""
        return client.query(self.name, held=held, holding=holding, **self.params_dict())

    def peek(self, client: Client) -> QueryResult | None:
        """The current cache entry's hash and time, without building the value (None: not cached)."""
        return client.peek(self.name, **self.params_dict())
