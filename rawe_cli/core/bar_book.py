"""Minute bars from a stream and from REST, each counted once, as bars of a timeframe. Pure.

Alpaca's bar streams send one-minute bars; REST backfill after a reconnect sends the same
kind. Both go into `add`, keyed by (symbol, minute start):

* a minute seen before is a duplicate and dropped; so is one whose timeframe bar was already
  handed out (late); nothing is ever counted twice;
* minutes are merged into the timeframe's bars (``5Min``: five minutes; open of the first,
  high/low over all, close of the last, volumes summed);
* a symbol's bar is complete when its last minute arrives, when a minute of a later bar
  arrives, or when the data is known to be complete past its end (`complete_until`: the feed
  says so while its stream is up, or after a REST backfill while it is down);
* complete bars with the same end are handed out together (`take`): as soon as every symbol
  has its bar, else `gather` seconds after the first of them was complete.

Time is passed in (`now`); the book never reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rawe_cli.models import Bar
from rawe_cli.timeframe import Timeframe

MINUTE = 60.0


@dataclass(slots=True)
class _Open:
    start: float
    end: float
    open: float
    high: float
    low: float
    close: float
    volume: float
    first_minute: float
    last_minute: float
    minutes: set[float] = field(default_factory=set)


@dataclass(slots=True)
class BookStats:
    minutes: int = 0  # minutes accepted
    duplicates: int = 0  # a (symbol, minute) seen before
    late: int = 0  # a minute of a bar already handed out
    bars: int = 0  # timeframe bars handed out

    def to_dict(self) -> dict[str, int]:
        return {"minutes": self.minutes, "duplicates": self.duplicates, "late": self.late,
                "bars": self.bars}


class BarBook:
    def __init__(self, timeframe: Timeframe, symbols: Iterable[str], gather: float = 1.0
                 ) -> None:
        self.timeframe = timeframe
        self.symbols = tuple(symbols)
        self.gather = gather
        self.stats = BookStats()
        self._open: dict[str, _Open] = {}
        self._done_until: dict[str, float] = {}  # end of the last bar handed out or complete
        self._ready: dict[float, dict[str, Bar]] = {}  # bar end -> symbol -> complete bar
        self._ready_at: dict[float, float] = {}  # bar end -> when its first bar was complete

    # -- input -------------------------------------------------------------------------------

    def add(self, symbol: str, start: float, o: float, h: float, lo: float, c: float,
            v: float, now: float) -> bool:
        """One minute bar (`start` = its first second); False when dropped."""
        b_start, b_end = self.timeframe.bucket(start)
        if start < self._done_until.get(symbol, float("-inf")):
            self.stats.late += 1
            return False
        cur = self._open.get(symbol)
        if cur is not None and b_start >= cur.end:  # a later bar: this one is complete
            self._complete(symbol, now)
            cur = None
        if cur is None:
            cur = self._open[symbol] = _Open(b_start, b_end, o, h, lo, c, v, start, start)
        elif start in cur.minutes:
            self.stats.duplicates += 1
            return False
        else:  # minutes may come out of order (a backfill): open of the first, close of the last
            if start < cur.first_minute:
                cur.open, cur.first_minute = o, start
            if start > cur.last_minute:
                cur.close, cur.last_minute = c, start
            cur.high, cur.low, cur.volume = max(cur.high, h), min(cur.low, lo), cur.volume + v
        cur.minutes.add(start)
        self.stats.minutes += 1
        if start + MINUTE >= cur.end:  # its last minute
            self._complete(symbol, now)
        return True

    def complete_until(self, symbols: Iterable[str], until: float, now: float) -> None:
        """The data of `symbols` is complete up to `until`: their bars ending by then are."""
        for symbol in symbols:
            cur = self._open.get(symbol)
            if cur is not None and cur.end <= until:
                self._complete(symbol, now)

    def wanted_from(self, symbol: str) -> float | None:
        """The first minute of `symbol` worth fetching: after the newest one of its bar being
        filled, else the end of its last complete bar (None: nothing seen yet)."""
        cur = self._open.get(symbol)
        if cur is not None:
            return cur.last_minute + MINUTE
        return self._done_until.get(symbol)

    def _complete(self, symbol: str, now: float) -> None:
        cur = self._open.pop(symbol)
        self._done_until[symbol] = cur.end
        self._ready.setdefault(cur.end, {})[symbol] = Bar(
            cur.end, symbol, cur.open, cur.high, cur.low, cur.close, cur.volume)
        self._ready_at.setdefault(cur.end, now)

    # -- output ------------------------------------------------------------------------------

    def take(self, now: float) -> list[tuple[float, list[Bar]]]:
        """Complete bars due now, as (bar end, bars sorted by symbol), oldest first."""
        out: list[tuple[float, list[Bar]]] = []
        for end in sorted(self._ready):
            group = self._ready[end]
            all_in = all(s in group for s in self.symbols)
            if not all_in and now < self._ready_at[end] + self.gather:
                break  # an older group waits: later ones wait behind it
            out.append((end, [group[s] for s in sorted(group)]))
            del self._ready[end], self._ready_at[end]
            self.stats.bars += len(group)
        return out

    def next_due(self) -> float | None:
        """When `take` may hand something out without new input (None: only on input)."""
        if not self._ready_at:
            return None
        return min(self._ready_at.values()) + self.gather

    def open_ends(self) -> dict[str, float]:
        """symbol -> end of its bar still being filled."""
        return {s: b.end for s, b in self._open.items()}
