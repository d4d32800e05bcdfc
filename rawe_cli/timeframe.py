"""The bar timeframe of a live Alpaca feed: ``1Min`` .. ``59Min``, ``1Hour`` .. ``23Hour``,
``1Day``, in Alpaca's spelling. Pure.

A timeframe is a bar size (``seconds``) and a bucketing of time into bars: minutes and hours
are counted from the Unix epoch (so ``5Min`` bars start at :00, :05, ...; ``1Hour`` bars on
the UTC hour, as Alpaca's own bars do), and a day is a New York calendar day (Alpaca stamps
daily bars at midnight America/New_York).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

MINUTE, HOUR, DAY = "Min", "Hour", "Day"
_UNIT_SECONDS = {MINUTE: 60, HOUR: 3600, DAY: 86400}
_MOST = {MINUTE: 59, HOUR: 23, DAY: 1}  # as alpaca-py's TimeFrame allows
_ALIASES = {"min": MINUTE, "minute": MINUTE, "t": MINUTE, "hour": HOUR, "h": HOUR,
            "day": DAY, "d": DAY}
_PATTERN = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)\s*$")
EXAMPLES = "1Min, 5Min, 15Min, 1Hour, 4Hour or 1Day"
NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True, slots=True)
class Timeframe:
    amount: int
    unit: str  # MINUTE, HOUR or DAY

    @property
    def seconds(self) -> float:
        """The bar size (a day counts 86,400 s, also on the two days a year that are not)."""
        return float(self.amount * _UNIT_SECONDS[self.unit])

    def bucket(self, ts: float) -> tuple[float, float]:
        """(start, end) of the bar that the instant `ts` falls in."""
        if self.unit == DAY:
            day = datetime.fromtimestamp(ts, NEW_YORK).date()
            start = datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
            nxt = day + timedelta(days=1)
            end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=NEW_YORK)
            return start.timestamp(), end.timestamp()
        size = self.seconds
        start = (ts // size) * size
        return start, start + size

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_timeframe(value: object) -> Timeframe:
    """A Timeframe from ``"5Min"`` (any case; ``min``/``hour``/``day``); ValueError if not."""
    if isinstance(value, Timeframe):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a timeframe ({EXAMPLES}), got {value!r}")
    match = _PATTERN.match(value)
    unit = _ALIASES.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(f"not a timeframe: {value!r} (expected {EXAMPLES})")
    amount = int(match.group(1))
    if not 1 <= amount <= _MOST[unit]:
        most = "only 1" if _MOST[unit] == 1 else f"1 to {_MOST[unit]}"
        raise ValueError(f"{value!r}: {unit} bars come in {most} (expected {EXAMPLES})")
    return Timeframe(amount, unit)
