"""Durations in bars or in time units, resolved against a bar size. Pure.

Every time-valued setting (a personality's holding horizon and cooldown, the narrative
engine's half-life and signal cooldown, the consensus window) is a ``Duration``:

* a count of bars: ``12b``, ``12 bars``, ``1 bar``: resolved against the bar size of the
  data or feed, so the same file works on 1-minute, hourly and daily bars;
* a length of time: ``90s``, ``30m`` (minutes), ``4h``, ``2d``, ``1w``;
* a plain number: seconds, as before durations had units (old files keep their meaning).

Hand-written rather than a library: the grammar is five suffixes, and the "bars" unit, which
is the point, is in no duration library.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

BARS = "bars"
SECONDS = "s"

UNIT_SECONDS = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}
BAR_UNITS = ("b", "bar", "bars")
NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"  # also the grammar of levels.py
_PATTERN = re.compile(rf"^\s*({NUMBER})\s*([a-zA-Z]*)\s*$")
EXAMPLES = "12b, 12 bars, 90s, 30m, 4h, 2d, or a number of seconds"


@dataclass(frozen=True, slots=True)
class Duration:
    """`value` bars (unit ``bars``) or `value` seconds (unit ``s``)."""

    value: float
    unit: str = SECONDS

    @property
    def in_bars(self) -> bool:
        return self.unit == BARS

    def seconds(self, bar_seconds: float) -> float:
        """Seconds of event time, with bars of `bar_seconds` each."""
        return self.value * bar_seconds if self.unit == BARS else self.value

    def bars(self, bar_seconds: float) -> float:
        """A count of bars (fractional when a time does not divide into bars)."""
        if self.unit == BARS:
            return self.value
        return self.value / bar_seconds if bar_seconds > 0 else 0.0

    def scaled(self, factor: float) -> Duration:
        return Duration(self.value * factor, self.unit)

    def __str__(self) -> str:
        if self.unit == BARS:
            return f"{self.value:g}b"
        return format_seconds(self.value)


def format_seconds(seconds: float) -> str:
    """The largest unit that divides `seconds` evenly: 300 -> 5m, 86400 -> 1d, 7.5 -> 7.5s."""
    for unit, size in (("w", 604800.0), ("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and abs(seconds / size - round(seconds / size)) < 1e-9:
            return f"{round(seconds / size)}{unit}"
    return f"{seconds:g}s"


def parse_duration(value: Any, *, allow_bars: bool = True) -> Duration:
    """A Duration from a number (seconds) or a string with a unit; ValueError if neither.

    A Duration passes through. The value must be finite and >= 0.
    """
    if isinstance(value, Duration):
        if value.in_bars and not allow_bars:
            raise ValueError("must be a length of time here (not bars)")
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration ({EXAMPLES})")
    if isinstance(value, int | float):
        number = float(value)
        unit = SECONDS
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (expected {EXAMPLES})")
        number = float(match.group(1))
        suffix = match.group(2).lower()
        if suffix in BAR_UNITS:
            if not allow_bars:
                raise ValueError(f"{value!r}: must be a length of time here, not bars")
            unit = BARS
        elif suffix == "" or suffix in UNIT_SECONDS:
            number *= UNIT_SECONDS.get(suffix, 1.0)
            unit = SECONDS
        else:
            raise ValueError(f"unknown unit {match.group(2)!r} in {value!r} "
                             f"(expected {EXAMPLES})")
    else:
        raise ValueError(f"expected a duration ({EXAMPLES}), got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"must be finite and >= 0, got {value!r}")
    return Duration(number, unit)


def bars(n: float) -> Duration:
    return Duration(float(n), BARS)
