"""`--feed alpaca`: bars and news by alpaca-py's real data-stream clients against a fake
websocket server (tests/fake_alpaca_data_ws.py), REST backfill after a drop through the real
historical clients against tests/fake_alpaca.py; and the pure pieces (timeframes, the bar
book, the stream URLs)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rawe_cli.brokers.alpaca import config_from_env
from rawe_cli.core.bar_book import BarBook
from rawe_cli.errors import RaweError
from rawe_cli.feeds.alpaca_stream import AlpacaStreamFeed, stream_urls
from rawe_cli.feeds.base import Tick
from rawe_cli.timeframe import parse_timeframe

try:
    from fake_alpaca import FakeAlpaca
    from fake_alpaca_data_ws import CRYPTO, NEWS, STOCKS, FakeDataStreams, bar_msg, news_msg
    from inproc import rawe
except ImportError:  # tests/ as a package
    from tests.fake_alpaca import FakeAlpaca
    from tests.fake_alpaca_data_ws import (
        CRYPTO,
        NEWS,
        STOCKS,
        FakeDataStreams,
        bar_msg,
        news_msg,
    )
    from tests.inproc import rawe

pytestmark = pytest.mark.timeout(90)
WAIT = 60.0
# a minute half an hour ago: complete bars, news inside the 2-hour lookback
T0 = (time.time() // 60) * 60 - 1800


# -- pure: timeframes, stream URLs, the bar book -----------------------------------------------


def test_timeframes() -> None:
    assert str(parse_timeframe("5min")) == "5Min" and parse_timeframe("1Hour").seconds == 3600
    tf = parse_timeframe("5Min")
    assert tf.bucket(1_767_600_130.0) == (1_767_600_000.0, 1_767_600_300.0)
    day = parse_timeframe("1Day")
    start, end = day.bucket(1_767_600_000.0)  # 2026-01-05 08:00 UTC = 03:00 in New York
    assert start == 1_767_589_200.0 and end - start == 86400  # midnight EST = 05:00 UTC
    for bad in ("60Min", "2Day", "5x", "Min", 5):
        with pytest.raises(ValueError):
            parse_timeframe(bad)


def test_stream_urls_follow_the_data_url() -> None:
    u = stream_urls("http://127.0.0.1:8123", "iex")
    assert (u.stock, u.crypto, u.news) == ("ws://127.0.0.1:8123/v2/iex",
                                           "ws://127.0.0.1:8123/v1beta3/crypto/us",
                                           "ws://127.0.0.1:8123/v1beta1/news")
    assert stream_urls("https://proxy.example:9/alpaca", "sip").stock == \
        "wss://proxy.example:9/alpaca/v2/sip"
    assert stream_urls("https://data.alpaca.markets").news == \
        "wss://stream.data.alpaca.markets/v1beta1/news"
    assert stream_urls(None).stock is None  # alpaca-py's own default


def test_bar_book_merges_minutes_once_each() -> None:
    book = BarBook(parse_timeframe("5Min"), ("AAPL", "MSFT"), gather=1.0)
    t = 1_767_600_000.0
    closes = [10.0, 11.0, 9.0, 12.0, 11.5]
    for i in (0, 2, 1, 3):  # out of order (a backfill), then a duplicate
        assert book.add("AAPL", t + 60 * i, closes[i], closes[i] + 1, closes[i] - 1,
                        closes[i], 10.0, now=t)
    assert not book.add("AAPL", t + 60, 0, 0, 0, 0, 10.0, now=t)
    assert book.take(t + 300) == []  # its last minute has not come
    assert book.add("AAPL", t + 240, 11.5, 13.0, 8.0, 11.5, 10.0, now=t + 301)
    assert book.take(t + 301) == []  # MSFT's bar of that time may still come
    [(end, bars)] = book.take(t + 302.5)  # gathered for a second, then out without it
    b = bars[0]
    assert end == t + 300 and b.timestamp == t + 300 and b.symbol == "AAPL"
    assert (b.open, b.high, b.low, b.close, b.volume) == (10.0, 13.0, 8.0, 11.5, 50.0)
    assert not book.add("AAPL", t + 120, 1, 1, 1, 1, 1, now=t + 303)  # its bar is out: late
    assert book.stats.duplicates == 1 and book.stats.late == 1
    # a bar ends when the data is known complete past its end (a sparse last minute)
    book.add("MSFT", t + 300, 5, 5, 5, 5, 1, now=t + 400)
    book.add("AAPL", t + 300, 6, 6, 6, 6, 1, now=t + 400)
    book.complete_until(("AAPL", "MSFT"), t + 600, now=t + 605)
    [(end, bars)] = book.take(t + 605)  # both there: out at once
    assert end == t + 600 and [x.symbol for x in bars] == ["AAPL", "MSFT"]
    assert book.wanted_from("AAPL") == t + 600 and book.wanted_from("NVDA") is None


# -- the feed against the fakes ------------------------------------------------------------


@pytest.fixture
def fakes() -> Iterator[tuple[FakeAlpaca, FakeDataStreams]]:
    with FakeAlpaca() as rest, FakeDataStreams(rest) as ws:
        rest.bar_history = {}  # the bars endpoints serve only what a test adds
        yield rest, ws


def env_of(rest: FakeAlpaca, ws: FakeDataStreams) -> dict[str, str]:
    return {**rest.env(), "APCA_API_DATA_URL": ws.url}


def feed_of(rest: FakeAlpaca, ws: FakeDataStreams, symbols: tuple[str, ...], count: int,
            said: list[str], **kw: Any) -> AlpacaStreamFeed:
    cfg = config_from_env(env_of(rest, ws), check_trading=False)
    return AlpacaStreamFeed(cfg, symbols, count=count, say=said.append, gather=0.5, **kw)


async def collect(feed: AlpacaStreamFeed, script: Callable[[], Any]) -> list[Tick]:
    """Run the feed until its count, while `script` (blocking, in a thread) drives the fakes."""
    got: list[Tick] = []

    async def consume() -> None:
        async for tick in feed.ticks():
            got.append(tick)

    task = asyncio.create_task(consume())
    await asyncio.to_thread(script)
    await asyncio.wait_for(task, WAIT)
    return got


def minute(sym: str, m: int, close: float) -> dict[str, Any]:
    return bar_msg(sym, T0 + 60 * m, close - 0.5, close + 1, close - 1, close, 100.0)


def wait(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, "condition not met within 60 s"
        time.sleep(0.02)


def test_bars_arrive_by_stream_and_become_ticks(fakes: tuple[FakeAlpaca, FakeDataStreams]
                                                ) -> None:
    rest, ws = fakes
    said: list[str] = []
    feed = feed_of(rest, ws, ("AAPL", "BTC/USD"), 3, said, news=False)

    def script() -> None:
        assert ws.wait_subscribed(STOCKS) and ws.wait_subscribed(CRYPTO)
        for m in range(3):
            ws.push(STOCKS, minute("AAPL", m, 100.0 + m))
            ws.push(CRYPTO, minute("BTC/USD", m, 90_000.0 + m))

    ticks = asyncio.run(collect(feed, script))
    assert [t.timestamp for t in ticks] == [T0 + 60, T0 + 120, T0 + 180]  # bar ends
    for m, t in enumerate(ticks):
        assert [(b.symbol, b.close) for b in t.bars] == [("AAPL", 100.0 + m),
                                                         ("BTC/USD", 90_000.0 + m)]
        assert t.events == ()
    assert ws.subscriptions[STOCKS]["bars"] == ["AAPL"]
    assert ws.subscriptions[CRYPTO]["bars"] == ["BTC/USD"]
    assert feed.stats.bars_by_stream == 6 and feed.stats.drops == 0 and said == []


def test_minute_bars_merge_into_the_timeframe(fakes: tuple[FakeAlpaca, FakeDataStreams]
                                              ) -> None:
    rest, ws = fakes
    feed = feed_of(rest, ws, ("AAPL",), 2, [], news=False, timeframe="5Min")
    # bars to come (a bar whose end is past is complete by the clock, with what it has)
    base = (time.time() // 300 + 1) * 300

    def script() -> None:
        assert ws.wait_subscribed(STOCKS)
        for m in range(10):
            c = 100.0 + m
            ws.push(STOCKS, bar_msg("AAPL", base + 60 * m, c - 0.5, c + 1, c - 1, c, 100.0))

    ticks = asyncio.run(collect(feed, script))
    first, second = (t.bars[0] for t in ticks)
    assert second.timestamp - first.timestamp == 300 == feed.bar_seconds
    assert (first.open, first.high, first.low, first.close, first.volume) == \
        (99.5, 105.0, 99.0, 104.0, 500.0)
    assert second.close == 109.0


def test_a_drop_is_said_once_and_backfilled_by_rest_without_duplicates(
        fakes: tuple[FakeAlpaca, FakeDataStreams]) -> None:
    rest, ws = fakes
    said: list[str] = []
    symbols = ("AAPL", "MSFT")
    feed = feed_of(rest, ws, symbols, 6, said, news=False)

    def script() -> None:
        assert ws.wait_subscribed(STOCKS)
        for m in (0, 1):
            ws.push(STOCKS, [minute(s, m, 10.0 + m) for s in symbols])
        wait(lambda: feed.stats.ticks == 2)
        ws.block(STOCKS)
        ws.drop(STOCKS)
        wait(lambda: any("down" in line for line in said))
        for m in (1, 2, 3):  # published while down (minute 1 was seen by stream already)
            for s in symbols:
                rest.add_bar(s, T0 + 60 * m, 10.0 + m - 0.5, 11.0 + m, 9.0 + m, 10.0 + m)
        ws.unblock(STOCKS)
        assert ws.wait_subscribed(STOCKS)
        # the reconnected stream sends minute 3 again (REST has it too) and then minute 4, 5
        for m in (3, 4, 5):
            ws.push(STOCKS, [minute(s, m, 10.0 + m) for s in symbols])

    ticks = asyncio.run(collect(feed, script))
    assert [t.timestamp for t in ticks] == [T0 + 60 * (m + 1) for m in range(6)]
    seen = [(b.symbol, b.timestamp) for t in ticks for b in t.bars]
    assert len(seen) == len(set(seen)) == 12  # every minute of both, none twice
    assert [b.close for t in ticks for b in t.bars if b.symbol == "AAPL"] == \
        [10.0 + m for m in range(6)]
    assert feed.stats.bars_by_rest == 4  # minutes 2 and 3 of both symbols
    assert feed.stats.drops == 1 and feed.stats.reconnects == 1
    down = [line for line in said if "down" in line]
    back = [line for line in said if "back after" in line]
    assert len(down) == 1 and len(back) == 1 and len(said) == 2
    assert down[0].startswith("alpaca stocks stream down (received 1011")
    assert ws.connections[STOCKS] == 2
    # the backfill asked for what came after the last minute seen, up to now
    backfill = rest.requests("GET", "/v2/stocks/bars")[-1]
    assert backfill["start"].startswith(time.strftime("%Y-%m-%dT%H:%M:00",
                                                      time.gmtime(T0 + 120)))
    assert backfill["timeframe"] == "1Min" and backfill["feed"] == "iex"


def test_news_arrives_as_narrative_events_and_is_backfilled_by_id(
        fakes: tuple[FakeAlpaca, FakeDataStreams]) -> None:
    rest, ws = fakes
    said: list[str] = []
    feed = feed_of(rest, ws, ("AAPL", "BTC/USD"), 3, said)
    now = time.time()

    def script() -> None:
        assert ws.wait_subscribed(NEWS)
        ws.push(NEWS, news_msg(501, now - 60, "Apple beats estimates, raises outlook",
                               ["AAPL"]))
        wait(lambda: feed.stats.ticks == 1)
        ws.block(NEWS)
        ws.drop(NEWS)
        wait(lambda: any("news stream down" in line for line in said))
        rest.add_news(502, now - 30, "Bitcoin surges to a record", ["BTCUSD"])
        ws.unblock(NEWS)
        assert ws.wait_subscribed(NEWS)
        wait(lambda: feed.stats.ticks == 2)  # the backfilled article's tick
        ws.push(NEWS, news_msg(502, now - 30, "Bitcoin surges to a record", ["BTCUSD"]))
        ws.push(NEWS, news_msg(503, now - 10, "Apple shares slump after recall", ["AAPL"]))

    ticks = asyncio.run(collect(feed, script))
    assert all(t.bars == () for t in ticks)
    first, second, third = ticks
    assert [e.symbols for e in first.events] == [("AAPL",)]
    ev = first.events[0]
    assert ev.sentiment > 0.5 and ev.intensity > 0.3 and ev.headline.startswith("Apple beats")
    assert ev.narrative_id.startswith("news:AAPL:")
    assert [e.symbols for e in second.events] == [("BTC/USD",)]  # the backfilled article
    assert [e.symbols for e in third.events] == [("AAPL",)]  # 502 again: not an article
    assert third.events[0].sentiment < ev.sentiment
    assert feed.stats.articles == 3
    assert first.timestamp <= second.timestamp <= third.timestamp
    assert ws.subscriptions[NEWS]["news"] == ["AAPL", "BTCUSD"]


def test_a_stream_that_does_not_connect_falls_back_to_rest(
        fakes: tuple[FakeAlpaca, FakeDataStreams]) -> None:
    rest, ws = fakes
    said: list[str] = []
    ws.block(STOCKS)
    last = (time.time() // 60) * 60 - 60  # the last complete minute
    first = last - 180
    for m in range(3):  # three minutes before it, fetched at the start
        rest.add_bar("AAPL", first + 60 * m, 10.0, 11.0, 9.0, 10.0 + m)
    feed = feed_of(rest, ws, ("AAPL",), 4, said, news=False, connect_grace=0.2,
                   fallback_seconds=0.3, warmup_bars=5)

    def script() -> None:
        wait(lambda: feed.stats.rest_fetches >= 1)
        rest.add_bar("AAPL", first + 180, 10.0, 11.0, 9.0, 13.0)  # the next poll brings it

    ticks = asyncio.run(collect(feed, script))
    assert [b.close for t in ticks for b in t.bars] == [10.0, 11.0, 12.0, 13.0]
    assert feed.stats.bars_by_rest == 4 and feed.stats.bars_by_stream == 0
    assert said[0] == ("alpaca stocks stream not connected after 0 s; bars by REST every "
                       "0.3 s until it is")


def test_keys_the_stream_refuses_are_one_error(fakes: tuple[FakeAlpaca, FakeDataStreams]
                                              ) -> None:
    rest, ws = fakes
    ws.secret = "another-secret"
    feed = feed_of(rest, ws, ("AAPL",), 1, [], news=False)

    async def run() -> None:
        async for _ in feed.ticks():
            pass

    with pytest.raises(RaweError, match="stocks data stream refused us \\(auth failed\\)"):
        asyncio.run(asyncio.wait_for(run(), WAIT))


# -- `rawe run --feed alpaca` in-process ----------------------------------------------------




def test_rawe_run_on_the_streams_decides(fakes: tuple[FakeAlpaca, FakeDataStreams],
                                         tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    rest, ws = fakes
    for name, value in env_of(rest, ws).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAWE_REDIS_URL", raising=False)
    monkeypatch.delenv("RAWE_CONFIG", raising=False)
    start = (time.time() // 60) * 60 - 85 * 60
    rnd = random.Random(3)
    for sym, price, path in (("AAPL", 200.0, STOCKS), ("BTC/USD", 90_000.0, CRYPTO)):
        frames = []
        for m in range(80):
            o = price
            price *= 1 + rnd.gauss(0.0005 if m > 30 else 0.0, 0.002)
            frames.append(bar_msg(sym, start + 60 * m, o, max(o, price) * 1.0005,
                                  min(o, price) * 0.9995, price))
        ws.script[path] = frames
    heads = ["Apple beats estimates, raises outlook", "Apple shares surge on record profit",
             "Bitcoin rallies to a record high", "Apple wins upgrade on strong growth",
             "Bitcoin surges on strong demand", "Apple record sales beat forecasts"]
    ws.script[NEWS] = [news_msg(100 + i, start + 60 * (10 + 8 * i), h,
                                ["BTCUSD"] if h.startswith("Bitcoin") else ["AAPL"])
                       for i, h in enumerate(heads)]
    config = tmp_path / "rawe.yaml"
    config.write_text("symbols: [AAPL, BTC/USD]\n")
    code, out, err = rawe(capsys, monkeypatch, "run", "--feed", "alpaca", "--ticks", "70",
                          "--agents", "8", "--json", "-c", str(config))
    assert code == 0, err
    result = json.loads(out)
    stats = result["stats"]
    assert stats["ticks"] == 70 and stats["stopped_by"] == "ticks"
    assert stats["bar_seconds"] == 60.0  # the timeframe's, 1Min
    assert stats["signals"] > 0 and stats["decisions"] > 0
    assert any(d["status"] in ("open", "closed") for d in result["decisions"])
    assert result["feed"]["articles"] == 6 and result["feed"]["bars_by_stream"] > 100
    assert ws.connections[STOCKS] == ws.connections[CRYPTO] == ws.connections[NEWS] == 1


def test_rawe_run_says_the_timeframes_bar_size(fakes: tuple[FakeAlpaca, FakeDataStreams],
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    rest, ws = fakes
    for name, value in env_of(rest, ws).items():
        monkeypatch.setenv(name, value)
    ws.script[STOCKS] = [minute("AAPL", m, 100.0 + m) for m in range(5)]
    code, out, err = rawe(capsys, monkeypatch, "run", "--feed", "alpaca", "--timeframe",
                          "5Min", "--ticks", "1", "--no-dashboard", "--agents", "3")
    assert code == 0, err
    assert "bar size 5m, window 3b (15m)" in out + err
