"""Alpaca market data and news by stream (`--feed alpaca`), with REST backfill.

alpaca-py's `StockDataStream` (stocks), `CryptoDataStream` (symbols with ``/``) and
`NewsDataStream` run in the engine's own asyncio loop, each as a task (`_run_forever`). Their
handlers only put what arrives on a queue; `ticks()` turns the queue into ticks:

* minute bars (stream or REST) go through a `BarBook` (core/bar_book.py): each (symbol,
  minute) counts once, minutes merge into bars of the `timeframe` setting, and a tick is the
  bars of all symbols that end at one time (Bar.timestamp = the bar's end, when its close is
  known). The tick also carries the news narratives of the lookback window (core/news.py);
* a new article (deduped by id) makes a tick of its own at once, with the narrative events
  of the symbols it names;
* tick times never go backwards (a tick is stamped max(its own time, the last tick's)).

Streams drop. A drop is said in one line; alpaca-py reconnects by itself (0.5-1 s, then
backing off), re-authenticates and re-subscribes. On every (re)connect, the bars and news
since the last ones seen are fetched by REST (the historical clients), so that nothing
published while the stream was down is lost, and the dedupe means nothing is doubled. While a
stream stays down, the same REST fetch runs every `fallback_seconds`. Keys the stream refuses
are an error at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rawe_cli.brokers.alpaca import AlpacaConfig, classify, is_crypto, quiet_import
from rawe_cli.brokers.alpaca_urls import data_stream_url
from rawe_cli.clock import Clock, SystemClock
from rawe_cli.core.bar_book import MINUTE, BarBook
from rawe_cli.core.news import Article, NewsParams, news_events
from rawe_cli.errors import RaweError
from rawe_cli.feeds.alpaca import articles_from, data_clients
from rawe_cli.feeds.base import Tick
from rawe_cli.models import Bar
from rawe_cli.timeframe import Timeframe, parse_timeframe

Say = Callable[[str], None]
STOCKS, CRYPTO, NEWS = "stocks", "crypto", "news"


@dataclass(frozen=True, slots=True)
class StreamUrls:
    stock: str | None  # None: alpaca-py's own (wss://stream.data.alpaca.markets/...)
    crypto: str | None
    news: str | None


def stream_urls(data_url: str | None, data_feed: str = "iex") -> StreamUrls:
    """The data streams' URLs from APCA_API_DATA_URL (brokers/alpaca_urls.py has the mapping:
    http -> ws with Alpaca's paths); all None: alpaca-py's defaults."""
    return StreamUrls(data_stream_url(data_url, "stock", data_feed),
                      data_stream_url(data_url, "crypto"), data_stream_url(data_url, "news"))


def _reason(exc: BaseException | str) -> str:
    """One short line: "received 1011 (internal error) ...; then sent ..." -> its first part."""
    text = str(exc).strip()
    text = text.splitlines()[0].split(";")[0] if text else type(exc).__name__
    return text[:160]


def hooked(cls: type, name: str, report: Callable[[str, str, str], None]) -> type:
    """A subclass of an alpaca-py data stream that reports its connection's state:
    ("up" when authenticated, "down" when the socket drops or goes stale, "refused" when the
    server refuses the keys or the subscription). The SDK's own reconnect loop is kept."""
    import websockets

    class Hooked(cls):  # type: ignore[misc, valid-type]
        async def _auth(self) -> None:
            try:
                await super()._auth()
            except ValueError as exc:
                report(name, "refused", _reason(exc))
                raise

        async def _start_ws(self) -> None:
            await super()._start_ws()
            report(name, "up", "")

        async def _consume(self) -> bool:
            try:
                stale = await super()._consume()
            except websockets.WebSocketException as exc:
                report(name, "down", _reason(exc))
                raise
            if stale:
                report(name, "down", "no data within data_timeout")
            return stale

    Hooked.__name__ = f"Hooked{cls.__name__}"
    return Hooked


@contextlib.contextmanager
def quiet_sdk_logs() -> Iterator[None]:
    """alpaca-py logs every reconnect with a traceback; the feed says it in one line."""
    logger = logging.getLogger("alpaca.data.live.websocket")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass(slots=True)
class _Group:
    name: str  # STOCKS, CRYPTO or NEWS
    symbols: tuple[str, ...]
    stream: Any = None
    task: asyncio.Task[None] | None = None
    up: bool = False
    ever_up: bool = False
    down_since: float | None = None
    next_fetch: float | None = None  # a REST fetch is due then (fallback or retry)
    reconnects: int = 0
    said_waiting: bool = False  # "not connected yet" said


@dataclass(slots=True)
class StreamStats:
    ticks: int = 0
    bars_by_stream: int = 0
    bars_by_rest: int = 0
    articles: int = 0
    rest_fetches: int = 0
    rest_failures: int = 0
    drops: int = 0
    reconnects: int = 0
    last_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ticks": self.ticks, "bars_by_stream": self.bars_by_stream,
                "bars_by_rest": self.bars_by_rest, "articles": self.articles,
                "rest_fetches": self.rest_fetches, "rest_failures": self.rest_failures,
                "drops": self.drops, "reconnects": self.reconnects,
                "last_error": self.last_error}


def _ts(dt: datetime) -> float:
    return dt.timestamp() if dt.tzinfo else dt.replace(tzinfo=UTC).timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(slots=True)
class AlpacaStreamFeed:
    cfg: AlpacaConfig
    symbols: tuple[str, ...]
    timeframe: Timeframe | str = "1Min"
    data_feed: str = "iex"
    count: int | None = None
    clock: Clock = field(default_factory=SystemClock)
    news: bool = True
    news_params: NewsParams = field(default_factory=NewsParams)
    say: Say | None = None
    late: float = 5.0  # seconds after a bar's end that a stream's last minute may still come
    gather: float = 1.0  # seconds a tick waits for the other symbols' bars of its time
    fallback_seconds: float = 60.0  # REST fetch interval while a stream is down
    connect_grace: float = 5.0  # a stream not up this long after start: fetch by REST
    warmup_bars: int = 1  # complete bars fetched by REST at the start (and the one under way)
    clients: tuple[Any, Any, Any] | None = None
    stats: StreamStats = field(default_factory=StreamStats)
    book: BarBook | None = None
    _articles: dict[str, Article] = field(default_factory=dict)
    _new_symbols: set[str] = field(default_factory=set)
    _news_seen: float | None = None  # created_at of the newest article seen
    _groups: dict[str, _Group] = field(default_factory=dict)
    _queue: asyncio.Queue[tuple[Any, ...]] | None = None
    _stopping: bool = False
    _started: float = 0.0
    _last_ts: float = float("-inf")

    def __post_init__(self) -> None:
        self.timeframe = parse_timeframe(self.timeframe)
        if self.data_feed not in ("iex", "sip"):
            raise RaweError(f"unknown stock data feed {self.data_feed!r} (iex or sip)")

    @property
    def bar_seconds(self) -> float:
        assert isinstance(self.timeframe, Timeframe)
        return self.timeframe.seconds

    def _say(self, line: str) -> None:
        if self.say is not None:
            self.say(line)

    # -- the tick loop ---------------------------------------------------------------------

    async def ticks(self) -> AsyncIterator[Tick]:
        assert isinstance(self.timeframe, Timeframe)
        if self.clients is None:
            self.clients = data_clients(self.cfg)
        self.book = BarBook(self.timeframe, self.symbols, gather=self.gather)
        self._queue = asyncio.Queue()
        self._started = self.clock.now()
        index = 0
        with quiet_sdk_logs():
            try:
                self._start_streams()
                pending: deque[tuple[float, tuple[Bar, ...], set[str] | None]] = deque()
                while self.count is None or index < self.count:
                    while pending and (self.count is None or index < self.count):
                        natural, bars, only = pending.popleft()
                        yield self._tick(index, natural, bars, only)
                        index += 1
                    if self.count is not None and index >= self.count:
                        break
                    await self._step(pending)
            finally:
                await self._stop_streams()

    def _tick(self, index: int, natural: float, bars: tuple[Bar, ...], only: set[str] | None
              ) -> Tick:
        ts = max(natural, self._last_ts)
        self._last_ts = ts
        events: tuple[Any, ...] = ()
        if self.news:
            horizon = ts - self.news_params.lookback
            for aid in [a for a, art in self._articles.items() if art.created_at < horizon]:
                del self._articles[aid]
            known = [a for a in self._articles.values() if a.created_at <= ts]
            evs = news_events(known, ts, self.news_params)
            events = tuple(e for e in evs if only is None or set(e.symbols) & only)
        self.stats.ticks += 1
        return Tick(index, ts, "", bars, events)

    async def _step(self, pending: deque[tuple[float, tuple[Bar, ...], set[str] | None]]
                    ) -> None:
        """Wait for input or a timer, handle everything queued, make the ticks that are due."""
        assert self._queue is not None and self.book is not None
        wait = self._wait_for(self.clock.now())
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout=wait)
        except TimeoutError:
            item = None
        if item is not None:
            await self._handle(item)
        while not self._queue.empty():
            await self._handle(self._queue.get_nowait())
        now = self.clock.now()
        for g in self._groups.values():
            if g.task is not None and g.task.done() and not self._stopping:
                raise RaweError(self._ended(g))
            if g.next_fetch is not None and now >= g.next_fetch:
                await self._fetch(g)
            elif g.up and g.name != NEWS:
                self.book.complete_until(g.symbols, now - self.late, now)
        for end, bars in self.book.take(self.clock.now()):
            pending.append((end, tuple(bars), None))
        if self._new_symbols:
            newest = max((a.created_at for a in self._articles.values()),
                         default=self.clock.now())
            pending.append((newest, (), set(self._new_symbols)))
            self._new_symbols.clear()

    def _wait_for(self, now: float) -> float:
        assert self.book is not None
        due = [t for t in (self.book.next_due(),) if t is not None]
        ends = self.book.open_ends()
        for g in self._groups.values():
            if g.next_fetch is not None:
                due.append(g.next_fetch)
            elif g.up:
                due.extend(ends[s] + self.late for s in g.symbols if s in ends)
        return min(5.0, max(0.0, min(due, default=now + 5.0) - now))

    # -- what the streams hand over -----------------------------------------------------------

    async def _handle(self, item: tuple[Any, ...]) -> None:
        assert self.book is not None
        kind = item[0]
        now = self.clock.now()
        if kind == "bar":
            _, symbol, start, o, h, lo, c, v = item
            if self.book.add(symbol, start, o, h, lo, c, v, now):
                self.stats.bars_by_stream += 1
        elif kind == "news":
            self._add_articles(item[1])
        elif kind == "up":
            await self._on_up(self._groups[item[1]])
        elif kind == "down":
            self._on_down(self._groups[item[1]], item[2])
        elif kind == "refused":
            g = self._groups[item[1]]
            raise RaweError(f"Alpaca's {g.name} data stream refused us ({item[2]}); check "
                            f"the API keys and the data subscription")

    def _report(self, name: str, state: str, detail: str) -> None:
        if self._stopping or self._queue is None:
            return
        self._queue.put_nowait((state, name, detail))

    async def _on_up(self, g: _Group) -> None:
        now = self.clock.now()
        was_down = (g.ever_up or g.said_waiting) and not g.up
        g.up = True
        if was_down:
            g.reconnects += 1
            self.stats.reconnects += 1
        g.ever_up = True
        await self._fetch(g)  # what was published before we (re)subscribed
        if was_down and g.down_since is not None:
            self._say(f"alpaca {g.name} stream back after {now - g.down_since:.1f} s; "
                      f"missed {'news' if g.name == NEWS else 'bars'} fetched by REST")
        g.down_since = None

    def _on_down(self, g: _Group, reason: str) -> None:
        if not g.up:
            return
        now = self.clock.now()
        g.up = False
        g.down_since = now
        g.next_fetch = now + self.fallback_seconds
        self.stats.drops += 1
        self._say(f"alpaca {g.name} stream down ({reason}): reconnecting; "
                  f"{'news' if g.name == NEWS else 'bars'} by REST until it is back")

    def _ended(self, g: _Group) -> str:
        assert g.task is not None
        exc = g.task.exception() if not g.task.cancelled() else None
        why = _reason(exc) if exc is not None else (self.stats.last_error or "it gave up")
        return f"Alpaca's {g.name} data stream stopped: {why}"

    # -- REST: backfill after a (re)connect, and the fallback while down ---------------------

    async def _fetch(self, g: _Group) -> None:
        now = self.clock.now()
        if not g.ever_up and not g.said_waiting:
            g.said_waiting = True
            g.down_since = self._started
            self._say(f"alpaca {g.name} stream not connected after {now - self._started:.0f} s; "
                      f"{'news' if g.name == NEWS else 'bars'} by REST every "
                      f"{self.fallback_seconds:g} s until it is")
        self.stats.rest_fetches += 1
        try:
            if g.name == NEWS:
                found = await asyncio.to_thread(self._fetch_news, now)
                self._add_articles(found)
            else:
                minutes = await asyncio.to_thread(self._fetch_minutes, g, now)
                assert self.book is not None
                for symbol, start, o, h, lo, c, v in minutes:
                    if self.book.add(symbol, start, o, h, lo, c, v, now):
                        self.stats.bars_by_rest += 1
                if not g.up:  # REST has the data up to now: those bars are complete
                    self.book.complete_until(g.symbols, now - self.late, now)
        except RaweError:
            raise
        except Exception as exc:
            failure = classify(exc)
            self.stats.rest_failures += 1
            self.stats.last_error = f"{g.name} by REST: {failure}"
            if failure.kind == "auth" or (failure.kind == "rejected" and failure.status == 403):
                raise RaweError(f"Alpaca market data refused the request ({g.name}: "
                                f"{failure}); check the API keys and the data subscription"
                                ) from None
            self._say(f"alpaca {g.name} by REST failed ({failure}); tried again in "
                      f"{self.fallback_seconds:g} s")
            g.next_fetch = now + self.fallback_seconds
            return
        g.next_fetch = None if g.up else now + self.fallback_seconds

    def _since(self, g: _Group, now: float) -> float:
        """The first minute to fetch: after the newest one seen of any of the group's symbols
        (the earliest of them), else the start of the last `warmup_bars` complete bars."""
        assert self.book is not None and isinstance(self.timeframe, Timeframe)
        default = self.timeframe.bucket(now)[0] - self.warmup_bars * self.timeframe.seconds
        firsts = []
        for s in g.symbols:
            wanted = self.book.wanted_from(s)
            firsts.append(default if wanted is None else wanted)
        return min(firsts, default=default)

    def _fetch_minutes(self, g: _Group, now: float
                       ) -> list[tuple[str, float, float, float, float, float, float]]:
        """Complete minute bars of the group since `_since` (blocking; a worker thread)."""
        with quiet_import():
            from alpaca.data.enums import DataFeed
            from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
            from alpaca.data.timeframe import TimeFrame
        assert self.clients is not None
        since = self._since(g, now)
        if since + MINUTE > now:
            return []
        syms = list(g.symbols)
        if g.name == CRYPTO:
            found = self.clients[1].get_crypto_bars(CryptoBarsRequest(
                symbol_or_symbols=syms, timeframe=TimeFrame.Minute, start=_dt(since),
                end=_dt(now)))
        else:
            found = self.clients[0].get_stock_bars(StockBarsRequest(
                symbol_or_symbols=syms, timeframe=TimeFrame.Minute, start=_dt(since),
                end=_dt(now), feed=DataFeed(self.data_feed)))
        out = []
        for symbol, bars in found.data.items():
            for b in bars:
                start = _ts(b.timestamp)
                if start >= since and start + MINUTE <= now:  # complete minutes only
                    out.append((symbol, start, float(b.open), float(b.high), float(b.low),
                                float(b.close), float(b.volume or 0.0)))
        out.sort(key=lambda m: (m[1], m[0]))
        return out

    def _fetch_news(self, now: float) -> list[Any]:
        with quiet_import():
            from alpaca.data.requests import NewsRequest
        assert self.clients is not None
        since = (self._news_seen - 60.0 if self._news_seen is not None
                 else now - self.news_params.lookback)  # a little overlap, deduped by id
        tags = ",".join(s.replace("/", "") for s in self.symbols)
        found = self.clients[2].get_news(NewsRequest(
            symbols=tags, start=_dt(since), sort="asc", exclude_contentless=False))
        return list(found.data.get("news", []))

    def _add_articles(self, news: list[Any]) -> None:
        for art in articles_from(news, self.symbols):
            if art.id in self._articles:
                continue
            if art.created_at < self.clock.now() - self.news_params.lookback:
                continue
            self._articles[art.id] = art
            self._new_symbols.update(art.symbols)
            self.stats.articles += 1
            self._news_seen = max(self._news_seen or art.created_at, art.created_at)

    # -- the streams ------------------------------------------------------------------------

    def _start_streams(self) -> None:
        with quiet_import():
            from alpaca.data.live import CryptoDataStream, NewsDataStream, StockDataStream
        urls = stream_urls(self.cfg.data_url, self.data_feed)
        stocks = tuple(s for s in self.symbols if not is_crypto(s))
        cryptos = tuple(s for s in self.symbols if is_crypto(s))
        key, secret = self.cfg.key_id, self.cfg.secret_key
        first_fetch = self._started + self.connect_grace
        if stocks:
            g = self._groups[STOCKS] = _Group(STOCKS, stocks, next_fetch=first_fetch)
            g.stream = hooked(StockDataStream, STOCKS, self._report)(
                key, secret, feed=self._stock_feed(), url_override=urls.stock)
            g.stream.subscribe_bars(self._on_bar, *stocks)
        if cryptos:
            g = self._groups[CRYPTO] = _Group(CRYPTO, cryptos, next_fetch=first_fetch)
            g.stream = hooked(CryptoDataStream, CRYPTO, self._report)(
                key, secret, url_override=urls.crypto)
            g.stream.subscribe_bars(self._on_bar, *cryptos)
        if self.news:
            g = self._groups[NEWS] = _Group(NEWS, self.symbols, next_fetch=first_fetch)
            g.stream = hooked(NewsDataStream, NEWS, self._report)(
                key, secret, url_override=urls.news)
            g.stream.subscribe_news(self._on_news, *(s.replace("/", "") for s in self.symbols))
        for g in self._groups.values():
            g.task = asyncio.create_task(g.stream._run_forever(), name=f"alpaca-{g.name}")

    def _stock_feed(self) -> Any:
        with quiet_import():
            from alpaca.data.enums import DataFeed
        return DataFeed(self.data_feed)

    async def _on_bar(self, bar: Any) -> None:
        if self._queue is not None:
            self._queue.put_nowait(("bar", bar.symbol, _ts(bar.timestamp), float(bar.open),
                                    float(bar.high), float(bar.low), float(bar.close),
                                    float(bar.volume or 0.0)))

    async def _on_news(self, news: Any) -> None:
        if self._queue is not None:
            self._queue.put_nowait(("news", [news]))

    async def _stop_streams(self) -> None:
        self._stopping = True
        tasks = [g.task for g in self._groups.values() if g.task is not None]
        for g in self._groups.values():
            with contextlib.suppress(Exception):
                await g.stream.stop_ws()
                await g.stream.close()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=3.0)
            for task in late:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
