"""The words of a field declaration: units, the faces that show a field, and :func:`column`.

A snapshot field is declared once, in :mod:`clusternb.model`, as an ``Annotated`` type whose ``msgspec.Meta``
carries everything about it: type and bounds (checked where records are decoded), its unit (from the type
alias: :data:`Bytes <clusternb.model.Bytes>` says ``bytes``), and, through :func:`column`, its one-line
description and the faces that show it. :mod:`clusternb.schema` reads those declarations back
(``msgspec.inspect``) to build the field catalogue, and every face follows from the catalogue. So adding a
numeric field to ``workers()``, ``metrics()``, REST, Prometheus, the tables and ``clusternb.fields()`` is one
annotated line in the model and the line of the source that fills it::

    procs: Annotated[Count, column("processes running", metric=True, prometheus="processes",
                                   heading="procs", table=TABLES)] | None = None

This module imports msgspec only: the model, the catalogue and the agent all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec

# Units, one convention (IEC bytes, SI rates: see clusternb.units); "" for counts and plain numbers.
PERCENT: Final = "percent"
BYTES: Final = "bytes"
RATE: Final = "bytes/s"
SECONDS: Final = "seconds"
MICROSECONDS: Final = "microseconds"
CELSIUS: Final = "°C"
WATTS: Final = "watts"
CORES: Final = "cores"
RATIO: Final = "ratio"

# The faces that show a workers table (``Shown.table``): each shows the fields that name it, in catalogue order.
CLI: Final = "cli"
PANEL: Final = "panel"
DASHBOARD: Final = "dashboard"
#: Every workers table: what a new field of general interest names.
TABLES: Final = frozenset({CLI, PANEL, DASHBOARD})

#: The key of a field's ``Meta.extra`` under which :func:`column` puts how the field is shown.
COLUMN: Final = "column"
#: The key of a type alias's ``Meta.extra`` that gives its unit (:func:`unit`).
UNIT: Final = "unit"


@dataclass(frozen=True, slots=True)
class Shown:
    """How a snapshot field appears beyond its frame column (see :class:`clusternb.schema.Field`).

    ``metric``: a per-sample number ``metrics(fields=)`` can return. ``prometheus``: the base name of its
    Prometheus series ("" when not exported); ``counter``: a counter rather than a gauge. ``table``: the
    faces whose workers table shows it (:data:`TABLES`), under ``heading``. ``unit`` and ``dtype`` replace
    what the type says ("" keeps it).
    """

    metric: bool = False
    prometheus: str = ""
    counter: bool = False
    heading: str = ""
    table: frozenset[str] = frozenset()
    unit: str = ""
    dtype: str = ""

    def __post_init__(self) -> None:
        if self.table and not self.heading:
            raise ValueError("a field shown in a table needs its heading")
        if not self.table <= TABLES:
            raise ValueError(f"no workers table on {sorted(self.table - TABLES)}; faces: {sorted(TABLES)}")


def column(description: str, **shown: Any) -> msgspec.Meta:
    """The ``Meta`` that makes a model field a column of ``workers()``: its one-line description, and how it is
    shown (the keywords of :class:`Shown`, checked there).

    Used inside the field's ``Annotated[...]``; msgspec merges it with the bounds and unit of the type alias.
    """
    return msgspec.Meta(description=description, extra={COLUMN: Shown(**shown)})


def unit(name: str) -> dict[str, str]:
    """The ``Meta.extra`` of a type alias whose values are in unit ``name``."""
    return {UNIT: name}
