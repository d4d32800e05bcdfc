"""`rawe data download`: Alpaca history into a replay directory, resumable.

DIR gets the two replay files (feeds/replay.py reads them unchanged) and two of its own:

* ``prices.csv``: the bars of every symbol; equity bars only inside NYSE regular sessions
  (core/sessions.py: holidays and early closes are exchange-calendars'), crypto bars at
  every hour.
* ``narratives.jsonl``: the news articles grouped into story threads (core/stories.py), one
  event an article, rebuilt from every article downloaded so far at each run.
* ``articles.jsonl``: the raw articles (one JSON object a line), the source of the above.
* ``manifest.json``: what was fetched: the timeframe and feed, and for each symbol (and for
  the news) the fetched time ranges, merged. A second run fetches only the ranges the
  manifest lacks, and a run cut short keeps every chunk it finished.

History is fetched in chunks of time (a week of 1-minute bars, a month of 5-minute ones,
...), each through alpaca-py's historical clients (StockHistoricalDataClient,
CryptoHistoricalDataClient, NewsClient), which follow ``next_page_token`` themselves. After
each chunk the files are rewritten (to a temporary file, then renamed), then the manifest.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rawe_cli.core import sessions as sess
from rawe_cli.core.news import Article
from rawe_cli.core.sentiment import scorer
from rawe_cli.core.stories import StoryParams, story_events
from rawe_cli.errors import RaweError, UsageError
from rawe_cli.feeds.replay import NARRATIVES, PRICE_COLUMNS, PRICES

MANIFEST = "manifest.json"
ARTICLES = "articles.jsonl"
FEEDS = ("iex", "sip")
# timeframe -> (alpaca amount, alpaca unit name, seconds)
TIMEFRAMES: dict[str, tuple[int, str, int]] = {
    "1Min": (1, "Minute", 60), "5Min": (5, "Minute", 300), "15Min": (15, "Minute", 900),
    "30Min": (30, "Minute", 1800), "1Hour": (1, "Hour", 3600), "1Day": (1, "Day", 86_400)}
_STOCK = re.compile(r"^[A-Z][A-Z0-9]{0,5}([.-][A-Z]{1,2})?$")
_CRYPTO = re.compile(r"^[A-Z0-9]{2,10}/[A-Z]{3,5}$")
DAY = 86_400


@dataclass(frozen=True, slots=True)
class Request:
    symbols: tuple[str, ...]
    timeframe: str
    start: float  # epoch seconds, inclusive
    end: float  # exclusive
    feed: str = "iex"
    news: bool = False


def parse_symbols(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for raw in text.split(","):
        s = raw.strip().upper()
        if not s:
            continue
        if not (_STOCK.match(s) or _CRYPTO.match(s)):
            raise UsageError(f"--symbols: {raw.strip()!r} is not a stock ticker (AAPL) or a "
                             "crypto pair (BTC/USD)")
        if s not in out:
            out.append(s)
    if not out:
        raise UsageError("--symbols: give at least one symbol (AAPL,MSFT,BTC/USD)")
    return tuple(out)


def parse_when(text: str, name: str, end: bool = False) -> float:
    """A date (2025-03-31; as --end: through that day) or an ISO-8601 time, to epoch s."""
    raw = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = datetime.fromisoformat(raw).replace(tzinfo=UTC)
            return (day + timedelta(days=1) if end else day).timestamp()
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{name} {raw!r} is not a date (2025-01-31) or an ISO-8601 time"
                         ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def make_request(symbols: str, timeframe: str, start: str, end: str, feed: str,
                 news: bool, now: float) -> Request:
    """The command line, checked: UsageError (exit 2) on anything wrong."""
    syms = parse_symbols(symbols)
    if timeframe not in TIMEFRAMES:
        raise UsageError(f"--timeframe {timeframe!r}: choose one of {', '.join(TIMEFRAMES)}")
    feed = feed.strip().lower()
    if feed not in FEEDS:
        raise UsageError(f"--feed {feed!r}: choose iex or sip")
    t0, t1 = parse_when(start, "--start"), parse_when(end, "--end", end=True)
    if t0 >= t1:
        raise UsageError(f"--start ({start}) must be before --end ({end})")
    if t0 >= now:
        raise UsageError(f"--start ({start}) is in the future")
    t1 = min(t1, now)
    req = Request(syms, timeframe, t0, t1, feed, news)
    stocks = [s for s in syms if not sess.is_crypto(s)]
    if stocks and not has_session(t0, t1):
        raise UsageError(f"{iso(t0)} to {iso(t1)} holds no NYSE session: no bars for "
                         f"{', '.join(stocks)} (weekend or holiday)")
    return req


def has_session(start: float, end: float) -> bool:
    cal = sess.nyse(start, end)
    return any(o < end and c > start for o, c in zip(cal.opens, cal.closes, strict=True))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- ranges ---------------------------------------------------------------------------------

Ranges = list[tuple[float, float]]


def merge(ranges: Iterable[tuple[float, float]]) -> Ranges:
    out: Ranges = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def missing(have: Ranges, start: float, end: float) -> Ranges:
    """The parts of [start, end) that `have` does not cover."""
    out: Ranges = []
    cursor = start
    for a, b in merge(have):
        if b <= cursor or a >= end:
            continue
        if a > cursor:
            out.append((cursor, min(a, end)))
        cursor = max(cursor, b)
        if cursor >= end:
            break
    if cursor < end:
        out.append((cursor, end))
    return out


def chunk_seconds(timeframe: str) -> int:
    """About 10,000 bars or fewer of a 24/7 symbol a chunk."""
    step = TIMEFRAMES[timeframe][2]
    return {60: 7, 300: 31, 900: 92}.get(step, 366) * DAY


def chunks(ranges: Ranges, size: float) -> list[tuple[float, float]]:
    out = []
    for a, b in ranges:
        t = a
        while t < b:
            out.append((t, min(b, t + size)))
            t += size
    return out


# -- the directory --------------------------------------------------------------------------

@dataclass(slots=True)
class Manifest:
    timeframe: str
    feed: str
    bars: dict[str, Ranges] = field(default_factory=dict)
    news: Ranges = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "timeframe": self.timeframe, "feed": self.feed,
                "bars": {s: [[iso(a), iso(b)] for a, b in r] for s, r in sorted(self.bars.items())},
                "news": [[iso(a), iso(b)] for a, b in self.news]}


def _ranges(where: Path, raw: Any) -> Ranges:
    try:
        return merge((parse_when(a, "range"), parse_when(b, "range")) for a, b in raw)
    except (TypeError, ValueError, UsageError):
        raise RaweError(f"{where}: bad range list {json.dumps(raw)[:60]}") from None


def read_manifest(out: Path, req: Request) -> Manifest:
    path = out / MANIFEST
    if not path.exists():
        if (out / PRICES).exists():
            raise RaweError(f"{out} holds a {PRICES} that rawe data download did not write "
                            f"(no {MANIFEST}): use another --out")
        return Manifest(req.timeframe, req.feed)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        tf, feed = raw["timeframe"], raw["feed"]
        bars, news = raw.get("bars", {}), raw.get("news", [])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise RaweError(f"{path}: not a download manifest ({exc})") from None
    if tf != req.timeframe:
        raise UsageError(f"{out} holds {tf} bars; a replay has one bar size: use another "
                         f"--out for {req.timeframe}")
    if feed != req.feed:
        raise UsageError(f"{out} was downloaded from the {feed} feed; use --feed {feed} or "
                         "another --out")
    return Manifest(tf, feed, {str(s): _ranges(path, r) for s, r in bars.items()},
                    _ranges(path, news))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


Row = tuple[str, str, str, str, str, str, str]  # as in PRICE_COLUMNS


def read_rows(out: Path) -> dict[tuple[str, str], Row]:
    path = out / PRICES
    if not path.exists():
        return {}
    rows: dict[tuple[str, str], Row] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for r in reader:
            if len(r) == len(PRICE_COLUMNS):
                rows[(r[0], r[1])] = (r[0], r[1], r[2], r[3], r[4], r[5], r[6])
    return rows


def write_rows(out: Path, rows: dict[tuple[str, str], Row]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PRICE_COLUMNS)
    for key in sorted(rows, key=lambda k: (k[1], k[0])):
        w.writerow(rows[key])
    _write_atomic(out / PRICES, buf.getvalue())


def read_articles(out: Path) -> dict[str, dict[str, Any]]:
    path = out / ARTICLES
    if not path.exists():
        return {}
    found: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            found[str(obj["id"])] = obj
    return found


def _num(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".")


# -- fetching -------------------------------------------------------------------------------

@dataclass(slots=True)
class Report:
    fetched_chunks: int = 0
    new_bars: dict[str, int] = field(default_factory=dict)
    new_articles: int = 0
    bars: dict[str, int] = field(default_factory=dict)
    dropped_off_session: int = 0
    events: int = 0
    up_to_date: bool = False


def _clients(env: Any) -> tuple[Any, Any, Any]:
    from rawe_cli.brokers.alpaca import config_from_env
    from rawe_cli.feeds.alpaca import data_clients

    cfg = config_from_env(env, check_trading=False)
    return data_clients(cfg)


def _fail(what: str, exc: Exception) -> RaweError:
    from rawe_cli.brokers.alpaca import classify

    failure = classify(exc)
    if failure.kind == "auth" or (failure.kind == "rejected" and failure.status == 403):
        return RaweError(f"Alpaca market data refused the request ({what}: {failure}); "
                         "check the API keys and the data subscription (--feed sip needs one)")
    return RaweError(f"Alpaca history failed ({what}): {failure}; run the command again to "
                     "resume")


def fetch_bars(client: Any, symbols: list[str], req: Request, a: float, b: float
               ) -> dict[str, list[Any]]:
    """alpaca-py bars of `symbols` with a <= t < b (the SDK follows the page tokens)."""
    from rawe_cli.brokers.alpaca import quiet_import

    with quiet_import():
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
    amount, unit, _ = TIMEFRAMES[req.timeframe]
    tf = TimeFrame(amount, TimeFrameUnit[unit])
    start = datetime.fromtimestamp(a, UTC)
    end = datetime.fromtimestamp(b - 1, UTC)  # Alpaca's end is inclusive
    if sess.is_crypto(symbols[0]):
        got = client.get_crypto_bars(CryptoBarsRequest(
            symbol_or_symbols=symbols, timeframe=tf, start=start, end=end))
    else:
        got = client.get_stock_bars(StockBarsRequest(
            symbol_or_symbols=symbols, timeframe=tf, start=start, end=end,
            feed=DataFeed(req.feed)))
    return dict(got.data)


def fetch_news(client: Any, symbols: tuple[str, ...], a: float, b: float) -> list[Any]:
    from rawe_cli.brokers.alpaca import quiet_import

    with quiet_import():
        from alpaca.data.requests import NewsRequest
    tags = ",".join(s.replace("/", "") for s in symbols)
    got = client.get_news(NewsRequest(
        symbols=tags, start=datetime.fromtimestamp(a, UTC),
        end=datetime.fromtimestamp(b - 1, UTC), sort="asc", exclude_contentless=False))
    return list(got.data.get("news", []))


def _ts(dt: datetime) -> float:
    return dt.timestamp() if dt.tzinfo else dt.replace(tzinfo=UTC).timestamp()


def _bar_row(symbol: str, bar: Any) -> Row:
    return (iso(_ts(bar.timestamp)), symbol, _num(float(bar.open)), _num(float(bar.high)),
            _num(float(bar.low)), _num(float(bar.close)), _num(float(bar.volume or 0.0)))


def _article_json(n: Any) -> dict[str, Any]:
    return {"id": str(n.id), "created_at": iso(_ts(n.created_at)),
            "headline": n.headline or "", "summary": n.summary or "",
            "symbols": list(n.symbols or []), "source": n.source or ""}


def plan(req: Request, manifest: Manifest) -> list[tuple[str, tuple[str, ...], float, float]]:
    """The chunks to fetch: ("bars", symbols, a, b) grouped by asset class and range, and
    ("news", symbols, a, b)."""
    size = chunk_seconds(req.timeframe)
    groups: dict[tuple[bool, float, float], list[str]] = {}
    for s in req.symbols:
        for a, b in chunks(missing(manifest.bars.get(s, []), req.start, req.end), size):
            groups.setdefault((sess.is_crypto(s), a, b), []).append(s)
    out: list[tuple[str, tuple[str, ...], float, float]] = [
        ("bars", tuple(syms), a, b) for (_, a, b), syms in sorted(groups.items())]
    if req.news:
        for a, b in chunks(missing(manifest.news, req.start, req.end), 31 * DAY):
            out.append(("news", req.symbols, a, b))
    return out


def download(req: Request, out: Path, *, env: Any = None, sentiment: str = "blend",
             clients: tuple[Any, Any, Any] | None = None,
             on_plan: Callable[[int], None] | None = None,
             on_progress: Callable[[int, str], None] | None = None,
             story: StoryParams | None = None) -> Report:
    """Fetch what DIR lacks of `req`, write the replay files, return what happened.
    `on_plan(chunks)` once, `on_progress(chunks done, what next)` before each chunk and at
    the end."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a directory")
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out, req)
    todo = plan(req, manifest)
    report = Report(up_to_date=not todo)
    if on_plan is not None:
        on_plan(len(todo))
    rows = read_rows(out)
    articles = read_articles(out)
    sessions = sess.nyse(req.start, req.end) if any(
        not sess.is_crypto(s) for s in req.symbols) else None
    step = TIMEFRAMES[req.timeframe][2]
    if todo:
        stock, crypto, news = clients or _clients(env)
    for kind, syms, a, b in todo:
        label = f"{kind} {','.join(syms)} {iso(a)[:10]}..{iso(b)[:10]}"
        if on_progress is not None:
            on_progress(report.fetched_chunks, label)
        if kind == "bars":
            client = crypto if sess.is_crypto(syms[0]) else stock
            try:
                got = fetch_bars(client, list(syms), req, a, b)
            except Exception as exc:
                raise _fail(label, exc) from None
            for s in syms:
                for bar in got.get(s, []):
                    t = _ts(bar.timestamp)
                    if not a <= t < b:
                        continue
                    if sessions is not None and not sess.is_crypto(s) and not sessions.tradable(
                            s, t, step):
                        report.dropped_off_session += 1
                        continue
                    row = _bar_row(s, bar)
                    if (row[0], s) not in rows:
                        report.new_bars[s] = report.new_bars.get(s, 0) + 1
                    rows[(row[0], s)] = row
                manifest.bars[s] = merge([*manifest.bars.get(s, []), (a, b)])
            write_rows(out, rows)
        else:
            try:
                found = fetch_news(news, syms, a, b)
            except Exception as exc:
                raise _fail(label, exc) from None
            fresh = [_article_json(n) for n in found if str(n.id) not in articles]
            for art in fresh:
                articles[art["id"]] = art
            report.new_articles += len(fresh)
            if fresh:
                with (out / ARTICLES).open("a", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(art) + "\n" for art in fresh)
            manifest.news = merge([*manifest.news, (a, b)])
        _write_atomic(out / MANIFEST, json.dumps(manifest.to_json(), indent=1) + "\n")
        report.fetched_chunks += 1
    if on_progress is not None:
        on_progress(report.fetched_chunks, "writing narratives")
    in_range: dict[str, int] = {}
    for t, s in rows:
        report.bars[s] = report.bars.get(s, 0) + 1
        if req.start <= _parse(t) < req.end:
            in_range[s] = in_range.get(s, 0) + 1
    events = narratives(articles.values(), req.symbols, sentiment, story)
    _write_atomic(out / NARRATIVES, "".join(json.dumps(e) + "\n" for e in events))
    report.events = len(events)
    empty = [s for s in req.symbols if not in_range.get(s)]
    if empty:
        raise RaweError(f"Alpaca has no {req.timeframe} bars for {', '.join(empty)} from "
                        f"{iso(req.start)} to {iso(req.end)} ({req.feed} feed): check the "
                        "symbol and the range")
    return report


def _parse(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def narratives(raw: Iterable[dict[str, Any]], symbols: Iterable[str], sentiment: str,
               story: StoryParams | None = None) -> list[dict[str, Any]]:
    """Stored articles -> narrative events (replay format) about our `symbols`."""
    from rawe_cli.core.news import our_symbols

    mine = tuple(symbols)
    score = scorer(sentiment)
    arts: list[Article] = []
    for obj in raw:
        syms = our_symbols(obj.get("symbols", []), mine)
        if syms:
            arts.append(Article(str(obj["id"]), _parse(obj["created_at"]), obj["headline"],
                                obj.get("summary", ""), syms, obj.get("source", "")))
    out = []
    for e in story_events(arts, lambda a: score(a.headline, a.summary), story):
        out.append({"timestamp": iso(e.timestamp), "narrative_id": e.narrative_id,
                    "assets": list(e.symbols), "intensity": e.intensity,
                    "sentiment": e.sentiment, "headline": e.headline, "source": e.source})
    return out


def summary_lines(report: Report, out: Path) -> Iterator[str]:
    total = sum(report.bars.values())
    per = ", ".join(f"{s} {n:,}" for s, n in sorted(report.bars.items()))
    if report.up_to_date:
        yield f"{out}: up to date, nothing to fetch"
    else:
        new = sum(report.new_bars.values())
        yield (f"fetched {report.fetched_chunks} chunk(s): {new:,} new bars, "
               f"{report.new_articles:,} new articles"
               + (f"; {report.dropped_off_session:,} equity bars outside NYSE sessions dropped"
                  if report.dropped_off_session else ""))
    yield f"{out / PRICES}: {total:,} bars ({per})"
    yield f"{out / NARRATIVES}: {report.events:,} narrative events"

