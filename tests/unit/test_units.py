"""The one unit convention: IEC bytes, SI rates, one decimal, a dash for missing values, plurals, UTC clock."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clusternb import units

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1280, "1.3 KiB"),  # an exact tie rounds up, as the browser's toFixed does (Python's format says 1.2)
        (1536, "1.5 KiB"),
        (1_048_575, "1.0 MiB"),  # 1023.999 KiB rounds to 1024.0: the next unit says it better
        (1_048_576, "1.0 MiB"),
        (25_232_932_864, "23.5 GiB"),
        (16 * 2**30, "16.0 GiB"),
        (3 * 2**40, "3.0 TiB"),
        (2**60, "1024.0 PiB"),  # the largest unit stays, however big
    ],
)
def test_bytes_are_iec(value: float, text: str) -> None:
    assert units.human_bytes(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B/s"),
        (999, "999 B/s"),
        (999.4, "999 B/s"),
        (999.5, "1.0 kB/s"),
        (1000, "1.0 kB/s"),
        (1024, "1.0 kB/s"),
        (999_949, "999.9 kB/s"),
        (999_950, "1.0 MB/s"),
        (1_234_567, "1.2 MB/s"),
        (1.25e9, "1.3 GB/s"),
    ],
)
def test_rates_are_si(value: float, text: str) -> None:
    assert units.human_rate(value) == text


MISSING = [None, float("nan"), np.nan, pd.NA, pd.NaT, np.datetime64("NaT"), float("inf"), -math.inf]


@pytest.mark.parametrize("value", MISSING, ids=repr)
def test_missing_values_are_a_dash_on_every_formatter(value: object) -> None:
    assert units.missing(value)
    for fmt in (units.human_bytes, units.human_rate, units.percent, units.number, units.seconds, units.clock):
        assert fmt(value) == units.DASH == "—"
        assert fmt(value, missing_text=units.ASCII_DASH) == "-"  # the CLI's dash


def test_percent_number_seconds_have_fixed_decimals() -> None:
    assert units.percent(12.25) == "12.3 %"
    assert units.percent(np.float32(50)) == "50.0 %"
    assert units.percent(0) == "0.0 %"
    assert units.number(0.5) == "0.50"
    assert units.number(8, 0) == "8"
    assert units.number(-0.0, 1) == "0.0"  # never "-0.0"
    assert units.seconds(1.25) == "1.3 s"


def test_counts_agree_with_their_noun() -> None:
    assert units.count(1, "node") == "1 node"
    assert units.count(0, "node") == "0 nodes"
    assert units.count(2, "node") == "2 nodes"
    assert units.count(np.int64(1), "node") == "1 node"
    assert units.count(1, "entry", "entries") == "1 entry"
    assert units.count(3, "entry", "entries") == "3 entries"
    assert units.noun(1, "node") == "node" and units.noun(7, "node") == "nodes"


@pytest.mark.parametrize(
    "value",
    [
        pd.Timestamp("2023-11-14 22:13:20", tz="UTC"),
        pd.Timestamp("2023-11-14 23:13:20", tz="Europe/Paris"),
        pd.Timestamp("2023-11-14 22:13:20"),  # naive means UTC
        dt.datetime(2023, 11, 14, 22, 13, 20, 999_000, tzinfo=dt.UTC),  # seconds are cut, not rounded
        np.datetime64("2023-11-14T22:13:20"),
        1_700_000_000,
        np.int64(1_700_000_000),  # epoch seconds, never nanoseconds
        "2023-11-14T22:13:20Z",
    ],
    ids=repr,
)
def test_clock_is_utc_with_date_and_zone(value: object) -> None:
    assert units.clock(value) == "2023-11-14 22:13:20 UTC"


def test_fixed_rounds_like_javascript_to_fixed() -> None:
    # toFixed: the exact binary value, ties away from zero. 0.125 and 2.5 are exact ties; 1.005 is below its tie.
    assert [units.fixed(v, d) for v, d in ((0.125, 2), (2.5, 0), (1.005, 2), (-2.5, 0), (1e-7, 1))] == [
        "0.13",
        "3",
        "1.00",
        "-3",
        "0.0",
    ]


def test_readme_states_the_convention() -> None:
    section = README.split("### Units on every face", 1)[1].split("\n#", 1)[0]
    for unit in (*units.BYTE_UNITS, *units.RATE_UNITS):
        assert f"`{unit}`" in section, unit
    # The README's examples are what the code writes.
    assert f"25,232,932,864 bytes read `{units.human_bytes(25_232_932_864)}`" in section
    assert f"1,234,567 bytes per second read `{units.human_rate(1_234_567)}`" in section


def test_the_dashboard_gets_the_convention_served_not_restated() -> None:
    """units.js runs the steps; the facts (unit names, bases, decimals, dash) come from units.convention()."""
    from pathlib import Path

    from clusternb import tables

    js = (Path(units.__file__).parent / "server" / "static" / "units.js").read_text()
    code = "\n".join(line.split("//")[0] for line in js.splitlines())  # comments may name them
    for fact in ("KiB", "kB/s", "1024", "1000", "—"):
        assert fact not in code, fact
    html = (Path(units.__file__).parent / "server" / "static" / "dashboard.html").read_text()
    assert 'id="units-convention">{{units_convention}}' in html
    assert json.loads(tables.script_json(units.convention())) == units.convention()
