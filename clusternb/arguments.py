"""Bad input from a person: the error types, and the checks every face shares.

Exception tree::

    ValueError
     └─ BadInput                  the user's own mistake, never the server's or the data's
         ├─ ArgumentError         an argument of a call or a request, named first ("since: ...")
         │   └─ ArgumentTypeError ... of the wrong type (also a TypeError)
         └─ ConfigError           a setting: a config file, an environment variable, a keyword of connect()

Why these types: every face turns exactly them, and nothing else, into "your input is wrong": the REST API
answers 400 for an ``ArgumentError`` (a server's own settings are not the client's fault), the WebSocket an
error frame, the CLI one line and exit status 2 for any ``BadInput``. Any other exception raised while
answering is a fault on the server's side (500, or the CLI's "internal error"), so a data fault can never be
reported as the user's mistake. Python callers can still catch ``ValueError`` or ``TypeError``.

The checks below are pure and bounded: a number is finite and within physical limits before it is used, so
``since=10**400`` or ``top_k=-1`` fail here, with the argument's name, instead of deep inside pandas.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
import reprlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clusternb.model import TIME_MAX
from clusternb.vocab import _DURATION, _DURATION_PART, _UNITS

#: The longest duration a time argument may name: far beyond any history window, far below float trouble.
DURATION_MAX_S = 366 * 86400 * 100
#: The longest a cache entry may live (a TTL): a year.
TTL_MAX = 366 * 86400
#: The most node names one request may list (the longest cluster we measure has 10,000 nodes).
NAMES_MAX = 10_000
#: The longest node name accepted as an argument (the snapshot model's own bound on names is shorter).
NAME_MAX_CHARS = 1024

_DECIMAL = re.compile(r"(?:\d+\.?\d*|\.\d+)")  # "600", "600.", ".5": seconds (only tried on short texts)

TIME_HELP = (
    "use a duration like '15m', '2h', '90s', a number of seconds, a datetime/pandas.Timestamp "
    "or an ISO 8601 time like '2026-01-31T12:00Z'"
)


class BadInput(ValueError):
    """Something a person gave (an argument, a setting) is wrong; the message says what and how to fix it."""


class ConfigError(BadInput):
    """A setting is wrong: a config file that cannot be read, an invalid value, an unknown name."""


class ArgumentError(BadInput):
    """A caller's argument is wrong; ``argument`` names it and the message starts with that name."""

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        self.detail = message
        super().__init__(f"{argument}: {message}")

    def at(self, argument: str) -> ArgumentError:
        """The same error (and type) named as the caller sees it: ``since`` of the first subscription is
        ``subscribe[0].since`` to a WebSocket client."""
        return type(self)(argument, self.detail)


class ArgumentTypeError(ArgumentError, TypeError):
    """A caller's argument has the wrong type."""


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlevel = 2


def shown(value: Any) -> str:
    """``repr(value)``, shortened as it is built: an error message must not echo a megabyte string back, nor
    spend a second writing out a nest of YAML aliases."""
    return _SHORT.repr(value)


def is_number(value: Any) -> bool:
    """A real number (int, float, numpy scalar), not a bool, nor numpy's datetime64/timedelta64 (integers to
    numpy, but times to a person)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not _is_numpy_time(value)


def _is_numpy_time(value: Any) -> bool:
    return type(value).__name__ in ("timedelta64", "datetime64")


def number(argument: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> float:
    """``value`` as a float within ``[lo, hi]``; ArgumentError otherwise."""
    kind = "an integer" if integer else "a number"
    if not is_number(value) or (integer and not isinstance(value, numbers.Integral)):
        raise ArgumentTypeError(argument, f"expected {kind}, got {shown(value)}")
    try:
        out = float(value)
    except (OverflowError, ValueError):
        out = math.inf
    if not (math.isfinite(out) and lo <= out <= hi):
        raise ArgumentError(argument, f"expected {kind} >= {lo:g} and <= {hi:g}, got {shown(value)}")
    return out


def integer(argument: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int within ``[lo, hi]``; ArgumentError otherwise."""
    return int(number(argument, value, lo, hi, integer=True))


def names(argument: str, value: Any) -> list[str]:
    """A name or a collection of names (a list, a set, a pandas Index or Series, a numpy array, dict keys) as a
    list of non-empty strings of bounded length; reading stops past :data:`NAMES_MAX` (a generator may not end)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Iterable) or isinstance(items, bytes | bytearray | Mapping):
        raise ArgumentTypeError(argument, f"expected a name or a list of names, got {shown(value)}")
    out = list(itertools.islice(items, NAMES_MAX + 1))
    if len(out) > NAMES_MAX:
        raise ArgumentError(argument, f"at most {NAMES_MAX} names")
    if not out:
        raise ArgumentError(argument, "an empty list selects nothing; leave it out (None) to mean all")
    for item in out:
        if not isinstance(item, str):
            raise ArgumentTypeError(argument, f"expected names (strings), got {shown(item)}")
        if not item or len(item) > NAME_MAX_CHARS:
            raise ArgumentError(argument, f"a name must have 1 to {NAME_MAX_CHARS} characters, got {item[:40]!r}")
    return [str(item) for item in out]  # numpy's str_ is a str, but not one to hand on


def namespace(argument: str, value: Any) -> str:
    """A cache namespace: 1 to 64 characters without ':' (it is a part of every key of that namespace)."""
    if not isinstance(value, str):
        raise ArgumentTypeError(argument, f"expected a namespace name, got {shown(value)}")
    if not 1 <= len(value) <= 64 or ":" in value:
        raise ArgumentError(argument, f"{shown(value)} is not a namespace name (1-64 characters, no ':')")
    return value


#: Byte sizes a person writes: IEC (KiB = 1024) and SI (kB = 1000) prefixes, case-insensitive for the SI ones.
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?i?b?)\s*", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
SIZE_MAX: Final = 2**60


def parse_bytes(argument: str, value: Any) -> int:
    """A size in bytes: a number, or a text such as ``"300MB"``, ``"1.5 GiB"``, ``"512k"`` (IEC ``KiB``...
    are powers of 1024, SI ``kB``... of 1000, as :mod:`clusternb.units` writes them); ArgumentError otherwise."""
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match is None:
            raise ArgumentError(argument, f"could not understand {shown(value)}; use bytes or e.g. '300MB', '1.5GiB'")
        digits, unit = match.groups()
        unit = unit.lower()
        base = 1024 if unit.endswith("ib") or unit.endswith("i") else 1000
        value = float(digits) * base ** _SIZE_POWERS[unit.rstrip("b").rstrip("i")]
    return int(number(argument, value, 0, SIZE_MAX))


def parse_duration(argument: str, text: str) -> float | None:
    """Seconds in a duration like '15m' or '2h30m', or None when ``text`` is not one."""
    text = text.strip().lower()
    if not text or not _DURATION.fullmatch(text):
        return None
    seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    if not math.isfinite(seconds) or seconds > DURATION_MAX_S:
        raise ArgumentError(argument, f"duration {text!r} is longer than {DURATION_MAX_S // 86400} days")
    return seconds


def parse_time(value: Any, now: float, argument: str) -> float:
    """A ``since``/``until`` argument as epoch seconds.

    A duration before ``now`` ("15m", "2h30m", "90s", ``timedelta``, a number of seconds, numpy numbers
    and times included) or an absolute time (``datetime``, ``pandas.Timestamp``, an ISO 8601 string; naive
    values are taken as UTC), between 1970 and 2100. Anything else, "now" and "1.5.5" included, is an
    ArgumentError: a guess at what a user meant would be a silently wrong window.
    """
    if _is_numpy_time(value):
        value = _from_numpy(value)
    if is_number(value):
        return now - _seconds(argument, value)
    if isinstance(value, timedelta):  # pd.Timedelta is a timedelta
        if _is_nat(value):
            raise ArgumentError(argument, f"got {shown(value)}; {TIME_HELP}")
        return now - _seconds(argument, value.total_seconds())
    if isinstance(value, datetime):  # pd.Timestamp is a datetime
        return _epoch(argument, value)
    if isinstance(value, str):
        return _parse_text(value, now, argument)
    raise ArgumentTypeError(argument, f"expected a duration or a time, got {shown(value)}; {TIME_HELP}")


def _parse_text(value: str, now: float, argument: str) -> float:
    """The text forms: a duration, a number of seconds (a CLI or a URL gives only text), an ISO 8601 time."""
    seconds = parse_duration(argument, value)
    if seconds is not None:
        return now - seconds
    text = value.strip()
    if len(text) <= 64 and _DECIMAL.fullmatch(text):
        return now - _seconds(argument, float(text))
    if text.startswith("-") and parse_duration(argument, text[1:]) is not None:
        raise ArgumentError(argument, f"{text!r} is negative: a duration counts back from now, so use {text[1:]!r}")
    when = _iso_time(text)
    if when is not None:
        return _epoch(argument, when)  # its own error for a time outside 1970-2100
    raise ArgumentError(argument, f"could not understand {value[:80]!r}; {TIME_HELP}")


def _iso_time(text: str) -> datetime | None:
    if len(text) > 64 or not text[:4].isdigit():
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _from_numpy(value: Any) -> Any:
    """A numpy time as Python's: ``.item()`` gives a timedelta or datetime, or at ns precision an int of ns."""
    item = value.item()
    if isinstance(item, int) and type(value).__name__ == "timedelta64":
        return timedelta(microseconds=item / 1000)
    if isinstance(item, int):
        return datetime.fromtimestamp(item / 1e9, UTC)
    return item


def _seconds(argument: str, value: Any) -> float:
    """A number of seconds before now: finite, not negative, at most :data:`DURATION_MAX_S` (100 years)."""
    try:
        seconds = float(value)
    except (OverflowError, ValueError):
        seconds = math.inf
    if seconds < 0:
        raise ArgumentError(argument, f"{shown(value)} is negative: a number counts seconds back from now")
    if not seconds <= DURATION_MAX_S:  # also NaN
        raise ArgumentError(argument, f"{shown(value)} seconds is not a duration up to {DURATION_MAX_S // 86400} days")
    return seconds


def _epoch(argument: str, when: datetime) -> float:
    if _is_nat(when):
        raise ArgumentError(argument, f"got {when!r}; {TIME_HELP}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp()
    if not 0 <= seconds <= TIME_MAX:
        raise ArgumentError(argument, f"{when.isoformat()} is outside 1970-2100")
    return seconds


def _is_nat(value: Any) -> bool:
    """pandas' NaT (a datetime and a timedelta that has no value), told apart without importing pandas."""
    return type(value).__name__ == "NaTType"
