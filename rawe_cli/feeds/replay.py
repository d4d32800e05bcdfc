"""Replay recorded history: prices.csv and narratives.jsonl from a directory, as Ticks.

Both files are UTF-8 text; a byte-order mark (Excel's "CSV UTF-8") is accepted.

prices.csv
    A header row with (at least) the columns ``timestamp,symbol,open,high,low,close,volume``
    in any order (other columns are ignored), then one bar a row, rows in any order, any
    number of symbols. ``timestamp`` is ISO-8601 (``2026-01-02T14:30:00Z``; an offset is
    converted to UTC; no offset means UTC). Prices must be finite and > 0, volume finite and
    >= 0, high >= low, and a (timestamp, symbol) pair may appear once.

narratives.jsonl
    One JSON object a line (blank lines are skipped): ``timestamp`` (ISO-8601 string),
    ``narrative_id`` (string), ``assets`` (a non-empty list of symbols), ``intensity``
    (number >= 0), ``sentiment`` (number from -1 to 1), optional ``headline`` and ``source``
    (strings).

Everything is read and checked before the first tick is produced: a bad row is a
``ReplayError`` naming the file and the line (``prices.csv line 17: close is NaN``), and
nothing runs on half a file. Ticks come out in time order, one per distinct bar timestamp,
with that timestamp's bars (sorted by symbol) and the events heard since the bar before (in
time order, then file order): a tick is a bar. The bar size is the median spacing of each
symbol's bars (60 s when every symbol has a single bar).

Sessions: when every equity bar (a symbol without ``/``) lies in a regular NYSE session
(intraday bars: between a session's open and close; daily bars: on a session day), the data
is exchange data and follows the NYSE calendar (`ReplayData.sessions`): the backtest sends
no order on an equity while the exchange is closed, and annualises by 252 sessions. Data
with equity bars at other hours (the synthetic sample, extended hours) runs around the
clock, like crypto always does.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
import statistics
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rawe_cli.core import metrics
from rawe_cli.core import sessions as sess
from rawe_cli.errors import RaweError
from rawe_cli.feeds.base import Tick, paced
from rawe_cli.models import Bar, NarrativeEvent
from rawe_cli.textfile import read_text

PRICES = "prices.csv"
NARRATIVES = "narratives.jsonl"
DEFAULT_BAR_SECONDS = 60.0  # the bar size of data with a single bar per symbol
PRICE_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")


class ReplayError(RaweError):
    """A replay file that is missing or does not validate."""


def parse_timestamp(text: str) -> float:
    """ISO-8601 to epoch seconds (UTC). Raises ValueError."""
    text = text.strip()
    if not text:
        raise ValueError("empty")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _number(where: str, name: str, raw: str) -> float:
    text = raw.strip()
    if not text:
        raise ReplayError(f"{where}: {name} is empty")
    try:
        value = float(text)
    except ValueError:
        raise ReplayError(f"{where}: {name} is not a number: {raw!r}") from None
    if math.isnan(value):
        raise ReplayError(f"{where}: {name} is NaN")
    if math.isinf(value):
        raise ReplayError(f"{where}: {name} is infinite")
    return value


def read_prices(path: Path) -> list[Bar]:
    handle = io.StringIO(read_text(path, ReplayError), newline="")  # UTF-8, a BOM (Excel) ok
    bars: list[Bar] = []
    seen: dict[tuple[float, str], int] = {}
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise ReplayError(f"{path}: empty file (expected a header: "
                                  f"{','.join(PRICE_COLUMNS)})")
            names = [h.strip().lower() for h in header]
            missing = [c for c in PRICE_COLUMNS if c not in names]
            if missing:
                raise ReplayError(f"{path} line 1: missing column "
                                  + ", ".join(repr(c) for c in missing))
            idx = {c: names.index(c) for c in PRICE_COLUMNS}
            width = len(names)
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                where = f"{path} line {reader.line_num}"
                if len(row) != width:
                    raise ReplayError(f"{where}: expected {width} fields, got {len(row)}")
                raw_ts = row[idx["timestamp"]]
                try:
                    ts = parse_timestamp(raw_ts)
                except ValueError:
                    raise ReplayError(f"{where}: bad timestamp {raw_ts!r} (expected ISO-8601, "
                                      "e.g. 2026-01-02T14:30:00Z)") from None
                symbol = row[idx["symbol"]].strip()
                if not symbol:
                    raise ReplayError(f"{where}: symbol is empty")
                o, h, lo, c = (_number(where, k, row[idx[k]])
                               for k in ("open", "high", "low", "close"))
                for k, v in (("open", o), ("high", h), ("low", lo), ("close", c)):
                    if v < 0:
                        raise ReplayError(f"{where}: {k} is negative ({v:g})")
                    if v == 0:
                        raise ReplayError(f"{where}: {k} is zero (prices must be > 0)")
                if h < lo:
                    raise ReplayError(f"{where}: high ({h:g}) is below low ({lo:g})")
                vol = _number(where, "volume", row[idx["volume"]])
                if vol < 0:
                    raise ReplayError(f"{where}: volume is negative ({vol:g})")
                key = (ts, symbol)
                first = seen.get(key)
                if first is not None:
                    raise ReplayError(f"{where}: a second bar for {symbol} at {raw_ts.strip()} "
                                      f"(first on line {first})")
                seen[key] = reader.line_num
                bars.append(Bar(ts, symbol, o, h, lo, c, vol))
        except csv.Error as exc:
            raise ReplayError(f"{path} line {reader.line_num}: bad CSV: {exc}") from None
    if not bars:
        raise ReplayError(f"{path}: no bars (only a header)")
    return bars


def _field(where: str, obj: dict[str, Any], name: str) -> Any:
    if name not in obj:
        raise ReplayError(f"{where}: missing field {name!r}")
    return obj[name]


def _json_number(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReplayError(f"{where}: {name} must be a number, got {json.dumps(value)}")
    if not math.isfinite(value):
        raise ReplayError(f"{where}: {name} is not finite")
    return float(value)


def _event(where: str, obj: Any) -> NarrativeEvent:
    if not isinstance(obj, dict):
        raise ReplayError(f"{where}: expected a JSON object")
    raw_ts = _field(where, obj, "timestamp")
    if not isinstance(raw_ts, str):
        raise ReplayError(f"{where}: timestamp must be an ISO-8601 string")
    try:
        ts = parse_timestamp(raw_ts)
    except ValueError:
        raise ReplayError(f"{where}: bad timestamp {raw_ts!r} (expected ISO-8601, "
                          "e.g. 2026-01-02T14:30:00Z)") from None
    nid = _field(where, obj, "narrative_id")
    if not isinstance(nid, str) or not nid.strip():
        raise ReplayError(f"{where}: narrative_id must be a non-empty string")
    assets = _field(where, obj, "assets")
    if (not isinstance(assets, list) or not assets
            or not all(isinstance(a, str) and a.strip() for a in assets)):
        raise ReplayError(f"{where}: assets must be a non-empty list of symbols")
    intensity = _json_number(where, "intensity", _field(where, obj, "intensity"))
    if intensity < 0:
        raise ReplayError(f"{where}: intensity is negative ({intensity:g})")
    sentiment = _json_number(where, "sentiment", _field(where, obj, "sentiment"))
    if not -1.0 <= sentiment <= 1.0:
        raise ReplayError(f"{where}: sentiment {sentiment:g} is outside -1..1")
    extra: dict[str, str] = {}
    for name in ("headline", "source"):
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            raise ReplayError(f"{where}: {name} must be a string")
        extra[name] = value or ""
    return NarrativeEvent(ts, nid.strip(), tuple(a.strip() for a in assets), intensity,
                          sentiment, extra["headline"], extra["source"])


def read_narratives(path: Path) -> list[NarrativeEvent]:
    text = read_text(path, ReplayError)
    events: list[NarrativeEvent] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReplayError(f"{where}: bad JSON: {exc.msg} (column {exc.colno})") from None
        events.append(_event(where, obj))
    return events


def merge(bars: list[Bar], events: list[NarrativeEvent]) -> tuple[list[Tick], int]:
    """One tick per bar time: its bars by symbol, and the events heard since the bar before.

    A tick is a bar: a narrative event between two bars goes to the next bar (it is acted
    on at that bar's close, never earlier), and makes no tick of its own; events before the
    first bar go to the first bar. Returns the ticks and the count of events after the last
    bar, which nothing can act on (they are dropped).
    """
    by_time: dict[float, list[Bar]] = {}
    for bar in bars:
        by_time.setdefault(bar.timestamp, []).append(bar)
    times = sorted(by_time)
    heard: list[list[NarrativeEvent]] = [[] for _ in times]
    dropped = 0
    for event in sorted(events, key=lambda e: e.timestamp):  # stable: file order kept
        i = bisect.bisect_left(times, event.timestamp)
        if i == len(times):
            dropped += 1
            continue
        heard[i].append(event)
    ticks: list[Tick] = []
    for i, ts in enumerate(times):
        tick_bars = by_time[ts]
        tick_bars.sort(key=lambda b: b.symbol)
        ticks.append(Tick(i, ts, "", tuple(tick_bars), tuple(heard[i])))
    return ticks, dropped


def bar_size(bars: list[Bar]) -> float:
    """The bar size of the data: the median spacing of each symbol's own bars (so that
    event times and other symbols do not count), then the median over the symbols."""
    by_symbol: dict[str, list[float]] = {}
    for bar in bars:
        by_symbol.setdefault(bar.symbol, []).append(bar.timestamp)
    steps = [step for ts in by_symbol.values()
             if (step := metrics.time_step(sorted(ts))) is not None]
    if not steps:
        return DEFAULT_BAR_SECONDS  # one bar per symbol: nothing to measure
    return statistics.median(steps)


@dataclass(frozen=True, slots=True)
class ReplayData:
    directory: Path
    ticks: list[Tick]
    bars: int
    events: int
    symbols: tuple[str, ...]
    bar_seconds: float = 60.0
    dropped_events: int = 0  # events after the last bar
    unmatched_events: int = 0  # events about none of the prices' symbols
    sessions: sess.Sessions | None = None  # the NYSE's, when the equity bars follow it

    @property
    def calendar(self) -> str:
        return self.sessions.name if self.sessions is not None else "24/7"

    def notes(self) -> list[str]:
        """Why a replay may trade nothing, said before it runs."""
        out = []
        where = self.directory / NARRATIVES
        if self.events == 0:
            out.append(f"{where} has no events: the agents act on narratives, so nothing "
                       "will trade (one JSON object a line: timestamp, narrative_id, assets, "
                       "intensity, sentiment)")
        elif self.unmatched_events == self.events:
            out.append(f"no event in {where} is about a symbol of {PRICES} "
                       f"({', '.join(self.symbols[:5])}{', ...' if len(self.symbols) > 5 else ''}"
                       "): nothing will trade")
        elif self.dropped_events == self.events:
            out.append(f"every event in {where} comes after the last bar: nothing will trade")
        return out

    @property
    def start(self) -> float:
        return self.ticks[0].timestamp

    @property
    def end(self) -> float:
        return self.ticks[-1].timestamp


def load(directory: str | Path) -> ReplayData:
    """Read and check both files of `directory`; raise ReplayError on the first bad line."""
    d = Path(directory)
    if not d.is_dir():
        raise ReplayError(f"{d}: not a directory (expected {PRICES} and {NARRATIVES} in it)")
    bars = read_prices(d / PRICES)
    events = read_narratives(d / NARRATIVES)
    symbols = tuple(sorted({b.symbol for b in bars}))
    ticks, dropped = merge(bars, events)
    unmatched = sum(1 for e in events if not set(e.symbols) & set(symbols))
    bar_seconds = bar_size(bars)
    return ReplayData(d, ticks, len(bars), len(events), symbols, bar_seconds, dropped,
                      unmatched, exchange_sessions(bars, bar_seconds))


def exchange_sessions(bars: list[Bar], bar_seconds: float) -> sess.Sessions | None:
    """The NYSE's sessions when every equity bar lies in one, else None (around the clock).
    A cheap look at the times first: the calendar (and pandas) load only when it can fit."""
    times = [b.timestamp for b in bars if not sess.is_crypto(b.symbol)]
    if not times or not sess.may_be_sessions(times, bar_seconds):
        return None
    sessions = sess.nyse(min(times), max(times))
    return sessions if sess.follows_sessions(sessions, times, bar_seconds) else None


@dataclass(slots=True)
class ReplayFeed:
    """Recorded ticks as a Feed (for the run loop); `speed` None means as fast as possible."""

    data: ReplayData
    speed: float | None = None

    def ticks(self) -> AsyncIterator[Tick]:
        return paced(iter(self.data.ticks), self.data.bar_seconds, self.speed)


def iter_ticks(data: ReplayData) -> Iterator[Tick]:
    return iter(data.ticks)
