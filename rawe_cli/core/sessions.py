"""Exchange sessions: when an equity trades. Pure once built (time is passed in).

`Sessions` holds the regular sessions of an exchange over a span as sorted (open, close)
epoch seconds; `nyse(start, end)` builds them from exchange-calendars' XNYS calendar
(holidays, weekends and early closes are the library's, not ours). Crypto symbols (with
``/``) trade around the clock and never consult a calendar.

A bar at time ``t`` (its start, Alpaca's convention) is in session when
``open <= t < close``; a daily bar (``bar_seconds`` of a day or more) is in session when
its New York date is a session day.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

NYSE = "XNYS"
DAY = 86_400.0
# No NYSE session starts before 13:30 UTC (9:30 EDT) or ends after 21:00 UTC (16:00 EST):
# bars outside that window (or on a weekend) rule the calendar out without loading it.
_EARLIEST_UTC = 13.5 * 3600
_LATEST_UTC = 21 * 3600


def is_crypto(symbol: str) -> bool:
    return "/" in symbol


@dataclass(frozen=True, slots=True)
class Sessions:
    name: str
    opens: tuple[float, ...]  # sorted epoch seconds
    closes: tuple[float, ...]
    days: frozenset[int]  # session dates, as date ordinals

    def is_open(self, ts: float) -> bool:
        i = bisect.bisect_right(self.opens, ts) - 1
        return i >= 0 and ts < self.closes[i]

    def is_session_day(self, ts: float) -> bool:
        """Is the day of a daily bar stamped `ts` a session? Its day is the UTC date of
        ``ts + 6 h``: right for bars stamped at midnight UTC or at midnight New York."""
        return _day(ts) in self.days

    def tradable(self, symbol: str, ts: float, bar_seconds: float) -> bool:
        """May an order on `symbol` go out at `ts`, a bar of `bar_seconds`? Crypto: always."""
        if is_crypto(symbol):
            return True
        if bar_seconds >= 0.8 * DAY:
            return self.is_session_day(ts)
        return self.is_open(ts)


def _day(ts: float) -> int:
    return datetime.fromtimestamp(ts + 6 * 3600, UTC).date().toordinal()


def may_be_sessions(timestamps: Iterable[float], bar_seconds: float) -> bool:
    """A cheap test, without the calendar: could these equity bar times all be in NYSE
    sessions? False as soon as one is on a weekend or (intraday) outside 13:30-21:00 UTC."""
    daily = bar_seconds >= 0.8 * DAY
    for ts in timestamps:
        if daily:
            if datetime.fromtimestamp(ts + 6 * 3600, UTC).weekday() >= 5:
                return False
            continue
        second = ts % DAY
        weekday = int(ts // DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        if weekday >= 5 or not _EARLIEST_UTC <= second < _LATEST_UTC:
            return False
    return True


def nyse(start: float, end: float) -> Sessions:
    """The NYSE's regular sessions from a few days before `start` to a few days after
    `end` (epoch seconds), from exchange-calendars (imported here: it brings pandas)."""
    import warnings

    first = datetime.fromtimestamp(start - 7 * DAY, UTC).date().isoformat()
    last = datetime.fromtimestamp(end + 7 * DAY, UTC).date().isoformat()
    with warnings.catch_warnings():  # its pandas deprecation warnings are not ours to fix
        warnings.simplefilter("ignore")
        import exchange_calendars as xc

        cal = xc.get_calendar(NYSE, start=first, end=last)
        opens = tuple(float(t.timestamp()) for t in cal.opens)
        closes = tuple(float(t.timestamp()) for t in cal.closes)
        days = frozenset(d.date().toordinal() for d in cal.sessions)
    return Sessions("NYSE", opens, closes, days)


def follows_sessions(sessions: Sessions, timestamps: Iterable[float],
                     bar_seconds: float) -> bool:
    """Is every one of these equity bar times in a session?"""
    if bar_seconds >= 0.8 * DAY:
        return all(sessions.is_session_day(ts) for ts in timestamps)
    return all(sessions.is_open(ts) for ts in timestamps)
