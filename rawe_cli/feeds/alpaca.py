"""Alpaca market data and news as a Feed (alpaca-py, imported lazily).

Every `poll_seconds` of wall time (the settings' tick_seconds) one tick:

* prices: the first tick takes each symbol's latest minute bar (OHLCV); later ticks the
  latest trade, as a bar from the previous close to that price. Stocks come from the stock
  data API, crypto symbols (with ``/``) from the crypto one. The tick's time is the poll's.
* narratives: articles of the News API about the symbols (fetched since the last poll, kept
  for the lookback window) become one narrative event per symbol (core/news.py).

HTTP runs in a worker thread, so a slow answer does not stall the event loop. A transient
failure (5xx, 429, timeout, refused connection) skips that tick's prices (or news) and is
retried at the next poll; `max_failures` polls in a row without prices is an error. Keys the
data API refuses are an error at once (one line). News failures never stop prices.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rawe_cli.brokers.alpaca import (
    AlpacaConfig,
    Failure,
    classify,
    is_crypto,
    quiet_import,
    tune,
)
from rawe_cli.clock import Clock, SystemClock
from rawe_cli.core.news import Article, NewsParams, news_events, our_symbols
from rawe_cli.errors import RaweError
from rawe_cli.feeds.base import Tick
from rawe_cli.models import Bar, NarrativeEvent

DATA_URL = "https://data.alpaca.markets"


def data_clients(cfg: AlpacaConfig) -> tuple[Any, Any, Any]:
    """(stock, crypto, news) alpaca-py clients, all pointed at cfg.data_url when set."""
    with quiet_import():
        from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
        from alpaca.data.historical.news import NewsClient
    stock = StockHistoricalDataClient(cfg.key_id, cfg.secret_key, url_override=cfg.data_url)
    crypto = CryptoHistoricalDataClient(cfg.key_id or None, cfg.secret_key or None,
                                        url_override=cfg.data_url)
    news = NewsClient(cfg.key_id, cfg.secret_key, url_override=cfg.data_url)
    return tune(stock, cfg), tune(crypto, cfg), tune(news, cfg)


def _ts(dt: datetime) -> float:
    return dt.timestamp() if dt.tzinfo else dt.replace(tzinfo=UTC).timestamp()


def bars_from(latest: dict[str, Any], now: float) -> list[Bar]:
    """alpaca-py latest bars (symbol -> Bar model) as our Bars at time `now`."""
    return [Bar(now, sym, float(b.open), float(b.high), float(b.low), float(b.close),
                float(b.volume or 0.0)) for sym, b in sorted(latest.items())]


def articles_from(news: list[Any], symbols: tuple[str, ...]) -> list[Article]:
    """alpaca-py News models as Articles about our symbols (others dropped)."""
    out = []
    for n in news:
        mine = our_symbols(n.symbols, symbols)
        if mine:
            out.append(Article(str(n.id), _ts(n.created_at), n.headline or "",
                               n.summary or "", mine, n.source or ""))
    return out


@dataclass(slots=True)
class FeedStats:
    polls: int = 0
    price_failures: int = 0
    news_failures: int = 0
    articles: int = 0
    last_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"polls": self.polls, "price_failures": self.price_failures,
                "news_failures": self.news_failures, "articles": self.articles,
                "last_error": self.last_error}


@dataclass(slots=True)
class AlpacaFeed:
    cfg: AlpacaConfig
    symbols: tuple[str, ...]
    poll_seconds: float = 5.0
    count: int | None = None
    clock: Clock = field(default_factory=SystemClock)
    news: bool = True
    news_params: NewsParams = field(default_factory=NewsParams)
    max_failures: int = 5
    clients: tuple[Any, Any, Any] | None = None
    stats: FeedStats = field(default_factory=FeedStats)
    _closes: dict[str, float] = field(default_factory=dict)
    _articles: dict[str, Article] = field(default_factory=dict)
    _news_since: float | None = None
    _failures_in_row: int = 0

    def __post_init__(self) -> None:
        if self.poll_seconds <= 0:
            raise RaweError("the Alpaca feed needs tick_seconds > 0 (its poll interval)")

    async def ticks(self) -> AsyncIterator[Tick]:
        if self.clients is None:
            self.clients = data_clients(self.cfg)
        index = 0
        while self.count is None or index < self.count:
            now = self.clock.now()
            bars, events = await asyncio.to_thread(self.poll, now)
            yield Tick(index, now, "", tuple(bars), tuple(events))
            index += 1
            if self.count is None or index < self.count:
                await self.clock.sleep(self.poll_seconds)

    # -- one poll (blocking; runs in a worker thread) ---------------------------------------

    def poll(self, now: float) -> tuple[list[Bar], list[NarrativeEvent]]:
        if self.clients is None:
            self.clients = data_clients(self.cfg)
        self.stats.polls += 1
        bars = self._prices(now)
        events = self._news(now) if self.news else []
        return bars, events

    def _fail(self, what: str, failure: Failure) -> None:
        if failure.kind == "auth" or (failure.kind == "rejected" and failure.status == 403):
            raise RaweError(f"Alpaca market data refused the request ({what}: {failure}); "
                            f"check the API keys and the data subscription")
        self.stats.last_error = f"{what}: {failure}"

    def _prices(self, now: float) -> list[Bar]:
        stocks = [s for s in self.symbols if not is_crypto(s)]
        cryptos = [s for s in self.symbols if is_crypto(s)]
        first = not self._closes
        bars: list[Bar] = []
        try:
            for group, client in ((stocks, self.clients[0]), (cryptos, self.clients[1])):
                if group:
                    bars.extend(self._fetch(group, client, first, now))
        except Exception as exc:
            failure = classify(exc)
            self._fail("prices", failure)
            self.stats.price_failures += 1
            self._failures_in_row += 1
            if self._failures_in_row >= self.max_failures:
                raise RaweError(f"Alpaca market data failed {self._failures_in_row} polls in "
                                f"a row: {failure}") from None
            return []
        self._failures_in_row = 0
        for bar in bars:
            self._closes[bar.symbol] = bar.close
        return bars

    def _fetch(self, group: list[str], client: Any, first: bool, now: float) -> list[Bar]:
        with quiet_import():
            from alpaca.data.requests import (
                CryptoLatestBarRequest,
                CryptoLatestTradeRequest,
                StockLatestBarRequest,
                StockLatestTradeRequest,
            )
        crypto = is_crypto(group[0])
        if first:
            if crypto:
                latest = client.get_crypto_latest_bar(
                    CryptoLatestBarRequest(symbol_or_symbols=group))
            else:
                latest = client.get_stock_latest_bar(
                    StockLatestBarRequest(symbol_or_symbols=group))
            return bars_from(latest, now)
        if crypto:
            trades = client.get_crypto_latest_trade(
                CryptoLatestTradeRequest(symbol_or_symbols=group))
        else:
            trades = client.get_stock_latest_trade(
                StockLatestTradeRequest(symbol_or_symbols=group))
        out = []
        for sym, trade in sorted(trades.items()):
            price = float(trade.price)
            prev = self._closes.get(sym, price)
            out.append(Bar(now, sym, prev, max(prev, price), min(prev, price), price,
                           float(trade.size or 0.0)))
        return out

    def _news(self, now: float) -> list[NarrativeEvent]:
        with quiet_import():
            from alpaca.data.requests import NewsRequest
        since = self._news_since if self._news_since is not None else (
            now - self.news_params.lookback)
        tags = ",".join(s.replace("/", "") for s in self.symbols)
        try:
            found = self.clients[2].get_news(NewsRequest(
                symbols=tags, start=datetime.fromtimestamp(since, UTC), limit=50,
                sort="desc", exclude_contentless=False))
        except Exception as exc:
            failure = classify(exc)
            self.stats.news_failures += 1
            self.stats.last_error = f"news: {failure}"
            if failure.kind == "auth":
                raise RaweError(f"Alpaca news refused the API keys ({failure})") from None
            found = None
        if found is not None:
            for art in articles_from(found.data.get("news", []), self.symbols):
                if art.id not in self._articles:
                    self._articles[art.id] = art
                    self.stats.articles += 1
            newest = max((a.created_at for a in self._articles.values()), default=since)
            self._news_since = max(since, newest - 60.0)  # a little overlap, deduped by id
        horizon = now - self.news_params.lookback
        for aid in [a for a, art in self._articles.items() if art.created_at < horizon]:
            del self._articles[aid]
        return news_events(self._articles.values(), now, self.news_params)
