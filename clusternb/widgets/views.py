"""Pure HTML for the panel sections: header, workers table, alerts, status line. Frames in, strings out.

Only values that change when the data changes are rendered: no "seconds ago" counters and no render time.
A section sends its HTML only when the string differs from the last one sent, so anything that ticked by
itself would cost a message on every tick. Age is shown as the absolute time of the newest sample ("as of").
The same functions build the static snapshot shown where no widget front end runs (nbconvert, a terminal).
Numbers are written by :mod:`clusternb.units` (the unit convention every face shares); every text from a node
goes through :func:`esc`. The workers table's columns, headings and formats follow from the field catalogue
(:mod:`clusternb.tables`).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pandas as pd

from clusternb import schema, tables
from clusternb.units import DASH, clock, count, human_bytes, human_rate, missing, noun, number, percent, seconds

HEALTH_COLOURS = {"healthy": "#2e7d32", "degraded": "#ef6c00", "critical": "#c62828"}
STATUS_COLOURS = {"online": "#2e7d32", "stale": "#ef6c00", "offline": "#c62828", "left": "#757575"}
SEVERITY_COLOURS = {"info": "#1565c0", "warning": "#ef6c00", "critical": "#c62828"}
#: A table this long scrolls; beyond MAX_ROWS rows it is cut with a "… n more" line to bound message size.
MAX_ROWS = 200

_BOX = "font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 13px; line-height: 1.45;"
_BADGE = "display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px;"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def badge(text: str, colour: str) -> str:
    return f'<span style="{_BADGE}background:{colour}">{esc(text)}</span>'


def header_html(status: pd.DataFrame, cache_backend: str, title: str = "clusternb") -> str:
    """Health, node counts, CPU/memory use, data age ("as of" the newest sample) and the cache backend."""
    if status.empty:
        return f'<div style="{_BOX}"><b>{esc(title)}</b> — no data yet</div>'
    row = status.iloc[0]
    health = str(row["health"])
    total = int(row["nodes_total"])
    nodes = [f"<b>{total}</b> {noun(total, 'node')}"]
    for state in ("online", "stale", "offline", "left"):
        in_state = int(row[f"nodes_{state}"])
        if in_state or state == "online":
            nodes.append(f'<span style="color:{STATUS_COLOURS[state]}">{in_state} {state}</span>')
    use = (
        f"CPU <b>{percent(row['cpu_percent'])}</b> of {count(int(row['cpu_count']), 'core')} · "
        f"memory <b>{percent(row['mem_used_percent'])}</b> of {human_bytes(row['mem_total_bytes'])}"
    )
    if int(row["gpu_count"]):
        use += f" · {count(int(row['gpu_count']), 'GPU')}"
    extra = []
    if int(row["alerts_firing"]):
        extra.append(f"{count(int(row['alerts_firing']), 'alert')} firing")
    if not pd.isna(row["dask_workers"]):
        extra.append(f"Dask: {count(int(row['dask_workers']), 'worker')}")
    if int(row["services_total"]):
        extra.append(f"services: {esc(row['services'])}")
    if not pd.isna(row["redis_state"]) and row["redis_state"] != "connected":
        since = "" if pd.isna(row["redis_down_since"]) else f" since {clock(row['redis_down_since'])}"
        extra.append(
            f'<span style="color:#b71c1c" title="{esc(row["redis_error"])}">Redis {esc(row["redis_state"])}{since}: '
            "showing this process's last view</span>"
        )
    if int(row["records_rejected"]):
        rejected = count(int(row["records_rejected"]), "record")
        extra.append(f'<span title="{esc(row["rejected"])}">{rejected} rejected</span>')
    return (
        f'<div style="{_BOX}display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center;'
        f'padding:6px 4px;border-bottom:1px solid #e0e0e0">'
        f'<span style="font-size:15px;font-weight:700">{esc(title)}</span>'
        f"{badge(health, HEALTH_COLOURS.get(health, '#757575'))}"
        f"<span>{' · '.join(nodes)}</span><span>{use}</span>"
        + "".join(f"<span>{e}</span>" for e in extra)
        + f'<span style="color:#616161">as of {clock(row["newest_sample"])} · cache: {esc(cache_backend)}</span>'
        "</div>"
    )


#: How the panel writes each format of :mod:`clusternb.tables`; None: a category, shown as a coloured status.
_FORMATS: dict[str, Callable[[Any], str] | None] = {
    "category": None,
    "time": lambda v: DASH if missing(v) else clock(v)[11:19],  # time of day, UTC (said in the heading)
    "percent": percent,
    "bytes": human_bytes,
    "rate": human_rate,
    "seconds": seconds,
    "integer": lambda v: number(v, 0),
    "number": number,
    "text": lambda v: DASH if missing(v) else str(v),
}


def _heading(field: schema.Field) -> str:
    return f"{field.heading} (UTC)" if tables.format_of(field) == "time" else field.heading


#: The workers table's columns after the node name: (frame column, heading, formatter), from the catalogue.
WORKER_TABLE: tuple[tuple[str, str, Callable[[Any], str] | None], ...] = tuple(
    (f.name, _heading(f), _FORMATS[tables.format_of(f)]) for f in tables.workers_table(schema.PANEL)
)

_TH = "text-align:right;padding:3px 10px;border-bottom:2px solid #bdbdbd;position:sticky;top:0;background:#fafafa;"
_TD = "text-align:right;padding:2px 10px;border-bottom:1px solid #eeeeee;font-variant-numeric:tabular-nums;"


Columns = tuple[tuple[str, str, Callable[[Any], str] | None], ...]


def _cell(value: Any, fmt: Callable[[Any], str] | None) -> str:
    """One cell, formatted and escaped; a category (``fmt`` None, the status) in its colour."""
    if fmt is not None:
        return f'<td style="{_TD}">{esc(fmt(value))}</td>'
    text = str(value)
    return f'<td style="{_TD}color:{STATUS_COLOURS.get(text, "#000")}">● {esc(text)}</td>'


#: Table rows written lately, by kind, columns, key and values (see :func:`_table`); cleared when full.
_ROWS: dict[tuple[Any, ...], str] = {}
_ROWS_MAX = 4096
_MISSING = object()


def _comparable(value: Any) -> Any:
    """A value as a memo key: every missing value (NaN, NA, NaT: unequal to themselves, or not comparable) as one."""
    if value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):  # noqa: PLR0124
        return _MISSING
    return value


def _table(frame: pd.DataFrame, kind: str, first: tuple[str, str, Callable[[Any], str]], columns: Columns) -> str:
    """A table of one row per frame row (at most :data:`MAX_ROWS`), scrolling inside a fixed height: the index
    as the ``first`` column (heading, cell style, how it is written), then ``columns``. ``kind``: what a row is
    (``worker``: the CSS classes and the query named when rows are cut), the rows counted by the first heading."""
    heading, style, write = first
    head = f'<th style="{_TH}text-align:left">{esc(heading)}</th>' + "".join(
        f'<th style="{_TH}">{esc(h)}</th>' for _, h, _ in columns
    )
    shown = frame.head(MAX_ROWS)
    # Values column by column (one list each), never row by row: iterrows builds a Series per row. A row is
    # written once per content: on a change tick one node's row is new, the others are looked up.
    values = [shown[column].tolist() for column, _, _ in columns]
    rows = []
    for key, row in zip(shown.index.tolist(), zip(*values, strict=True), strict=True):
        memo = (kind, id(columns), key, *map(_comparable, row))
        html_row = _ROWS.get(memo)
        if html_row is None:
            cells = [f'<td style="{_TD}{style}">{esc(write(key))}</td>']
            cells += [_cell(value, fmt) for value, (_, _, fmt) in zip(row, columns, strict=True)]
            html_row = f'<tr class="clusternb-{kind}">{"".join(cells)}</tr>'
            if len(_ROWS) >= _ROWS_MAX:
                _ROWS.clear()
            _ROWS[memo] = html_row
        rows.append(html_row)
    more = len(frame) - MAX_ROWS
    cut = f"… {more} more {noun(more, heading)} (see clusternb.{kind}s())"
    tail = f'<div style="color:#616161">{cut}</div>' if more > 0 else ""
    return (
        f'<div style="{_BOX}max-height:320px;overflow:auto">'
        f'<table class="clusternb-{kind}s" style="border-collapse:collapse;width:100%">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{tail}</div>"
    )


def workers_html(workers: pd.DataFrame) -> str:
    """One row per node; status coloured. Long tables scroll inside a fixed height."""
    if workers.empty:
        return f'<div style="{_BOX}color:#616161">no workers reported yet</div>'
    return _table(workers, "worker", ("node", "text-align:left;font-weight:600", str), WORKER_TABLE)


#: The kernels table's columns after the kernel id, from the catalogue as the workers table's.
KERNEL_TABLE: Columns = tuple(
    (f.name, _heading(f), _FORMATS[tables.format_of(f)]) for f in tables.kernels_table(schema.PANEL)
)


def kernels_html(kernels: pd.DataFrame) -> str:
    """One row per kernel, largest memory first (the frame's order); a hidden path (another user's) is a dash."""
    if kernels.empty:
        return f'<div style="{_BOX}color:#616161">no kernels reported (servers with the extension publish theirs)</div>'
    short_id: Callable[[Any], str] = lambda kernel_id: str(kernel_id)[:8]  # noqa: E731 - as Jupyter shows ids
    return _table(kernels, "kernel", ("kernel", "text-align:left;font-family:monospace", short_id), KERNEL_TABLE)


def alerts_html(alerts: pd.DataFrame) -> str:
    """Active alerts, newest first, severity as a coloured badge."""
    if alerts.empty:
        return f'<div style="{_BOX}color:#2e7d32;padding:4px">✓ no active alerts</div>'
    items = []
    for _, a in alerts.head(MAX_ROWS).iterrows():
        severity = str(a["severity"])
        ack = " (acknowledged)" if bool(a["acknowledged"]) else ""
        items.append(
            f'<li style="margin:2px 0">{badge(severity, SEVERITY_COLOURS.get(severity, "#757575"))} '
            f"<b>{esc(a['rule'])}</b> on <b>{esc(a['node'])}</b>: {esc(a['message'])} "
            f'<span style="color:#616161">({esc(a["state"])} since {clock(a["started_at"])}{ack})</span></li>'
        )
    style = f"{_BOX}list-style:none;padding-left:4px;margin:4px 0"
    return f'<ul class="clusternb-alerts" style="{style}">{"".join(items)}</ul>'


def status_line_html(state: str, interval: float, error: str | None = None) -> str:
    """The panel's footer: live/paused, the refresh interval, and the last error if there is one."""
    colour = {"live": "#2e7d32", "paused": "#757575", "closed": "#757575"}.get(state, "#c62828")
    text = f'<span style="color:{colour}">● {esc(state)}</span> · checks every {interval:g} s'
    if error:
        text += f' · <span style="color:#c62828">error: {esc(error)}</span>'
    return f'<div style="{_BOX}font-size:12px;color:#616161">{text}</div>'


def section_title(text: str) -> str:
    return f'<div style="{_BOX}font-weight:700;margin-top:6px">{esc(text)}</div>'


def static_snapshot(parts: list[str], note: str) -> str:
    """The panel as plain HTML for front ends without widgets: the same sections, frozen, with a note."""
    return (
        f'<div class="clusternb-static" style="{_BOX}">'
        + "".join(parts)
        + f'<div style="color:#616161;font-size:12px;margin-top:4px">{esc(note)}</div></div>'
    )
