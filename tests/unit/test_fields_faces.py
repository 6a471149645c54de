"""The faces' workers tables follow from the field catalogue: every column the CLI, the panel and the dashboard
show after the node name, its heading and its format come from a field's declaration (``table``, ``heading``,
unit and dtype), so a new field appears on every face it names with no other edit."""

from __future__ import annotations

import argparse
import html
import json
import re
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest

from clusternb import cli, cli_text, frames, schema, tables, units
from clusternb.server import pages
from clusternb.widgets import views
from tests.helpers import make_snapshot

T0 = 1_700_000_000.0
VALUES = {"mem_total_bytes": 25_232_932_864, "mem_used_bytes": 2_254_857_830, "net_rx_bps": 1_234_567.0}


def _workers() -> pd.DataFrame:
    return frames.workers_frame([make_snapshot("n1", time=T0, **VALUES)], T0 + 1, lambda interval: (3600.0, 7200.0))


def _names(face: str) -> list[str]:
    return [f.name for f in tables.workers_table(face)]


def test_every_table_column_is_a_workers_field_with_a_heading_and_a_known_format() -> None:
    for face in schema.TABLES:
        fields = tables.workers_table(face)
        assert fields, face
        headings = [f.heading for f in fields]
        assert all(headings) and len(set(headings)) == len(headings), face
        assert {tables.format_of(f) for f in fields} <= set(tables.FORMATS)
    assert all(f.table <= schema.TABLES for f in schema.WORKERS)
    assert not [f.name for f in schema.WORKERS if f.heading and not f.table]  # a heading no table shows


def test_every_panel_heading_and_column_comes_from_the_catalogue() -> None:
    table = views.workers_html(_workers())
    heads = [html.unescape(h) for h in re.findall(r"<th[^>]*>([^<]*)</th>", table)]
    expected = [
        f"{f.heading} (UTC)" if tables.format_of(f) == "time" else f.heading for f in tables.workers_table("panel")
    ]
    assert heads == ["node", *expected]
    assert [column for column, _, _ in views.WORKER_TABLE] == _names("panel")
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table)
    assert len(cells) == len(heads)
    assert units.human_bytes(VALUES["mem_used_bytes"]) in cells and units.human_rate(VALUES["net_rx_bps"]) in cells


class _Client:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def workers(self) -> pd.DataFrame:
        return self.frame

    def metrics(self, **_: Any) -> pd.DataFrame:
        return self.frame


def test_every_cli_workers_column_comes_from_the_catalogue() -> None:
    out = cli._cmd_workers(_Client(_workers()), argparse.Namespace(json=False))  # type: ignore[arg-type]
    head, row = out.splitlines()
    assert head.split() == ["node", *_names("cli")]
    assert units.human_bytes(VALUES["mem_total_bytes"]) in row and units.percent(8.936) in row


def test_the_cli_writes_every_metric_by_its_declared_unit() -> None:
    snap = make_snapshot("n1", time=T0, **VALUES)
    frame = frames.metrics_frame([snap], frames.METRIC_FIELDS)
    args = argparse.Namespace(json=False, fields=None, since="5m", until=None, node=None, tail=0)
    out = cli._cmd_metrics(_Client(frame), args)  # type: ignore[arg-type]
    assert units.human_bytes(VALUES["mem_used_bytes"]) in out and units.human_rate(VALUES["net_rx_bps"]) in out
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC ", out.splitlines()[1])
    for name in frames.METRIC_FIELDS:  # every metric is a number, written by clusternb.units
        assert cli_text.format_of(schema.field("metrics", name)) is not None, name


def test_the_dashboard_page_carries_its_columns_from_the_catalogue() -> None:
    template = (pages.STATIC / "dashboard.html").read_text()
    assert re.findall(r"<table id=\"workers\".*?</thead>", template, re.S)[0].count("<th>") == 1  # Node alone
    assert "{{workers_columns}}" in template
    text = tables.dashboard_columns_json()
    assert "<" not in text and json.loads(text) == tables.dashboard_columns()
    assert [c["name"] for c in tables.dashboard_columns()] == _names("dashboard")
    assert tables.css_class(schema.field("workers", "cpu_percent")) == "cpu"  # td.cpu, as the e2e tests find it
    script = (pages.STATIC / "dashboard.js").read_text()
    handled = re.search(r"const FORMAT = \{(.*?)\};", script, re.S)
    assert handled is not None
    keys = set(re.findall(r"(\w+)(?=[,:])", handled.group(1))) | {"time"}  # time: an age, ticking in place
    assert set(tables.FORMATS) <= keys


def test_a_new_field_naming_every_table_appears_on_every_face(monkeypatch: pytest.MonkeyPatch) -> None:
    new = replace(schema.field("workers", "threads"), name="procs", heading="procs", table=schema.TABLES)
    monkeypatch.setattr(schema, "WORKERS", (*schema.WORKERS, new))
    for face in schema.TABLES:
        assert "procs" in _names(face)
    assert {"name": "procs", "heading": "procs", "format": "integer", "class": "procs"} in tables.dashboard_columns()
