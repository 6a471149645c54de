"""One unit convention for every face: how bytes, rates, percents, counts and times are written as text.

The CLI, the panels and the dashboard all show numbers through these functions, so one node reads the same on
every face. The dashboard's ``server/static/units.js`` runs the same steps in the browser on the convention
this module serves with the page (:func:`convention`: units, bases, decimals, dash), so no unit, base or
decimal count is written twice:

- bytes are IEC, powers of 1024: ``B, KiB, MiB, GiB, TiB, PiB`` (``25232932864`` -> ``23.5 GiB``);
- rates are SI, powers of 1000: ``B/s, kB/s, MB/s, GB/s, TB/s, PB/s`` (``1234567`` -> ``1.2 MB/s``), as
  network and disk hardware is rated, and as the charts' SI axis ticks (``~s`` + ``B/s``) read;
- whole units (``B``, ``B/s``) without decimals, every larger unit and every percent with one decimal;
- a missing value (None, NaN, NA, NaT, or an infinity, which no measurement is) is a dash, never ``nan``;
- a count agrees with its noun (``1 node``, ``2 nodes``);
- a time is ``YYYY-MM-DD HH:MM:SS UTC``: absolute, so it is true whenever it is read.

Rounding is JavaScript's ``Number.prototype.toFixed``: half away from zero on the exact binary value (Python's
``format`` rounds half to even, so ``1280 B`` would read ``1.2 KiB`` here and ``1.3 KiB`` in the browser).

pandas is not imported at module level: the CLI imports this module before it knows whether it needs pandas.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

#: What a missing value reads as on the HTML faces (panel, dashboard). The CLI passes ``ASCII_DASH``.
DASH: Final = "—"
#: The CLI's dash: plain ASCII, so a table survives any terminal encoding.
ASCII_DASH: Final = "-"
#: Byte units, each 1024 times the one before (IEC 80000-13).
BYTE_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
#: Rate units, each 1000 times the one before (SI prefixes; lower-case k as SI writes it).
RATE_UNITS: Final = ("B/s", "kB/s", "MB/s", "GB/s", "TB/s", "PB/s")
#: How many of one unit make the next: IEC for bytes, SI for rates.
BYTE_BASE: Final = 1024
RATE_BASE: Final = 1000
#: Decimals after a scaled unit (KiB and up, kB/s and up) and after a percent.
DECIMALS: Final = 1


def convention() -> dict[str, Any]:
    """The convention as data, served with the dashboard page for ``units.js``."""
    return {
        "DASH": DASH,
        "BYTE_UNITS": list(BYTE_UNITS),
        "BYTE_BASE": BYTE_BASE,
        "RATE_UNITS": list(RATE_UNITS),
        "RATE_BASE": RATE_BASE,
        "DECIMALS": DECIMALS,
    }


def missing(value: Any) -> bool:
    """True for None, NaN, ``pd.NA``, ``NaT`` and infinities: values no face should print as a number."""
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except OverflowError:  # an int past float's range is no measurement either
        return True
    except (TypeError, ValueError):
        return str(value) in ("<NA>", "NaT")  # pd.NA and pd.NaT refuse float(); pandas stays unimported


def fixed(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, rounded exactly as JavaScript's ``toFixed`` rounds."""
    try:
        number = float(value)
    except OverflowError:  # an int past float's range: no measurement, but text all the same
        number = math.inf if value > 0 else -math.inf
    if number == 0:
        number = 0.0  # toFixed writes -0 as "0"
    if not math.isfinite(number) or abs(number) >= 1e21:  # toFixed's own limit: it writes these as String(v)
        return repr(number) if math.isfinite(number) else str(number)
    quantum = Decimal(1).scaleb(-decimals)
    return str(Decimal(number).quantize(quantum, rounding=ROUND_HALF_UP))


def scaled(value: Any, base: int, units: tuple[str, ...], missing_text: str = DASH) -> str:
    """``value`` in the largest of ``units`` (each ``base`` times the last) that keeps it at least 1."""
    if missing(value):
        return missing_text
    number, i = float(value), 0
    while abs(number) >= base and i < len(units) - 1:
        number /= base
        i += 1
    text = fixed(number, 0 if i == 0 else DECIMALS)
    if abs(float(text)) >= base and i < len(units) - 1:  # 1023.96 KiB rounds to 1024.0: say 1.0 MiB instead
        number /= base
        i += 1
        text = fixed(number, DECIMALS)
    return f"{text} {units[i]}"


def human_bytes(value: Any, missing_text: str = DASH) -> str:
    """IEC: ``1023`` -> ``1023 B``, ``1024`` -> ``1.0 KiB``, ``25232932864`` -> ``23.5 GiB``."""
    return scaled(value, BYTE_BASE, BYTE_UNITS, missing_text)


def human_rate(value: Any, missing_text: str = DASH) -> str:
    """SI, bytes per second: ``999`` -> ``999 B/s``, ``1000`` -> ``1.0 kB/s``, ``1234567`` -> ``1.2 MB/s``."""
    return scaled(value, RATE_BASE, RATE_UNITS, missing_text)


def percent(value: Any, missing_text: str = DASH) -> str:
    """``12.345`` -> ``12.3 %``."""
    return missing_text if missing(value) else f"{fixed(value, DECIMALS)} %"


def number(value: Any, decimals: int = 2, missing_text: str = DASH) -> str:
    """A plain number (load average, counts): ``0.5`` -> ``0.50``; ``decimals=0`` for whole numbers."""
    return missing_text if missing(value) else fixed(value, decimals)


def seconds(value: Any, missing_text: str = DASH) -> str:
    """A duration or an age: ``1.25`` -> ``1.3 s``."""
    return missing_text if missing(value) else f"{fixed(value, DECIMALS)} s"


def noun(n: Any, singular: str, plural: str | None = None) -> str:
    """The noun that agrees with ``n``: ``noun(1, "node")`` -> ``node``, ``noun(0, "node")`` -> ``nodes``."""
    return singular if n == 1 else plural or singular + "s"


def count(n: Any, singular: str, plural: str | None = None) -> str:
    """``count(1, "node")`` -> ``1 node``; ``count(2, "entry", "entries")`` -> ``2 entries``."""
    return f"{n} {noun(n, singular, plural)}"


def clock(value: Any, missing_text: str = DASH) -> str:
    """``YYYY-MM-DD HH:MM:SS UTC`` for a datetime (naive means UTC), ``pd.Timestamp``, epoch seconds or ISO text."""
    if missing(value):
        return missing_text
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, numbers.Real):
        moment = dt.datetime.fromtimestamp(float(value), dt.UTC)
    else:  # numpy datetime64, ISO strings: pandas parses every form the frames hold
        import pandas as pd

        moment = pd.Timestamp(value).to_pydatetime()
    moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
