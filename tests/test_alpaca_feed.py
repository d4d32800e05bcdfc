"""The Alpaca feed (bars, trades, news through the real alpaca-py data clients against the
fake server) and the pure pieces under it: the sentiment scorer and news -> events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from rawe_cli.brokers.alpaca import AlpacaConfig
from rawe_cli.clock import ManualClock
from rawe_cli.core import sentiment
from rawe_cli.core.news import Article, NewsParams, narrative_id, news_events, our_symbols
from rawe_cli.errors import RaweError
from rawe_cli.feeds.alpaca import AlpacaFeed

try:
    from fake_alpaca import FakeAlpaca
except ImportError:  # tests/ as a package
    from tests.fake_alpaca import FakeAlpaca

pytestmark = pytest.mark.timeout(30)
NOW = 1_767_600_000.0  # 2026-01-05T08:00:00Z


# -- sentiment --------------------------------------------------------------------------------


def test_sentiment_scores_are_explainable() -> None:
    assert sentiment.score("Apple beats estimates") == pytest.approx(2 / 3)
    assert sentiment.score("Tesla shares plunge after recall") == pytest.approx(-4 / 5)
    assert sentiment.score("Nvidia holds annual meeting") == 0.0
    assert sentiment.score("Regulator does not approve merger") < 0  # negation flips
    assert sentiment.explain("No growth, but record profit") == [
        ("growth", -1), ("record", 1), ("profit", 1)]
    assert sentiment.explain("not a strong quarter") == [("strong", -1)]
    # headline counts double: a positive headline outweighs one negative summary word
    assert sentiment.score("Microsoft raises guidance", "costs weigh, shares slide") > 0
    assert -1.0 < sentiment.score("miss " * 40) < -0.97


# -- news -> narrative events ----------------------------------------------------------------


def art(i: int, age: float, headline: str, *symbols: str) -> Article:
    return Article(str(i), NOW - age, headline, "", symbols)


def test_news_events_intensity_from_count_and_recency() -> None:
    one = news_events([art(1, 0, "Apple beats estimates", "AAPL")], NOW)
    three = news_events([art(i, 0, "Apple beats estimates", "AAPL") for i in range(3)], NOW)
    old = news_events([art(1, 3600, "Apple beats estimates", "AAPL")], NOW)
    assert one[0].intensity == pytest.approx(1 / 3, abs=1e-6)
    assert three[0].intensity == pytest.approx(1.0)
    assert old[0].intensity == pytest.approx(0.25 / 3, abs=1e-6)  # two half-lives old
    assert news_events([art(1, 7201, "Apple beats", "AAPL")], NOW) == []  # past lookback
    ev = one[0]
    assert ev.symbols == ("AAPL",) and ev.sentiment == pytest.approx(2 / 3)
    assert ev.narrative_id == "news:AAPL:2026-01-05" == narrative_id("AAPL", NOW)
    assert ev.headline == "Apple beats estimates" and ev.timestamp == NOW


def test_news_events_weight_sentiment_by_recency_and_split_symbols() -> None:
    events = news_events([
        art(1, 0, "Nvidia surges", "NVDA", "AAPL"),
        art(2, 1800, "Nvidia plunges", "NVDA"),
    ], NOW, NewsParams(half_life=1800.0))
    by = {e.symbols[0]: e for e in events}
    assert list(by) == ["AAPL", "NVDA"]
    s = 2 / 3
    assert by["NVDA"].sentiment == pytest.approx((1.0 * s + 0.5 * -s) / 1.5, abs=1e-6)
    assert by["NVDA"].headline == "Nvidia surges"  # the newest
    assert by["AAPL"].intensity == pytest.approx(1 / 3, abs=1e-6)


def test_news_symbols_map_to_ours() -> None:
    assert our_symbols(["BTCUSD", "AAPL", "XYZ"], ("AAPL", "BTC/USD")) == ("BTC/USD", "AAPL")


# -- the feed against the fake server ---------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    clock = ManualClock(NOW)
    with FakeAlpaca(now=clock.now) as server:
        server.clock = clock  # type: ignore[attr-defined]
        server.prices.update({"AAPL": 200.0, "MSFT": 400.0, "BTC/USD": 50_000.0})
        yield server


def feed_for(fake: FakeAlpaca, **kw: object) -> AlpacaFeed:
    cfg = AlpacaConfig(fake.key, fake.secret, trading_url=fake.url, data_url=fake.url,
                       sdk_retry_wait=0, backoff=0)
    return AlpacaFeed(cfg, ("AAPL", "MSFT", "BTC/USD"), poll_seconds=5.0,
                      clock=fake.clock, **kw)  # type: ignore[attr-defined, arg-type]


def test_bars_then_trades_then_news(fake: FakeAlpaca) -> None:
    fake.add_news(101, NOW - 120, "Apple beats estimates, raises outlook", ["AAPL"],
                  "iPhone sales grew.")
    fake.add_news(102, NOW - 60, "Bitcoin tumbles", ["BTCUSD"])
    fake.add_news(103, NOW - 30, "Unrelated company news", ["ZZZZ"])
    feed = feed_for(fake, count=3)

    def step(f: FakeAlpaca, path: str) -> None:
        if path.startswith("/v2/stocks"):
            f.prices["AAPL"] += 1.0

    fake.on_data = step
    ticks = []

    async def collect() -> None:
        async for t in feed.ticks():
            ticks.append(t)

    asyncio.run(collect())
    assert [t.index for t in ticks] == [0, 1, 2]
    assert [t.timestamp for t in ticks] == [NOW, NOW + 5, NOW + 10]
    first = {b.symbol: b for b in ticks[0].bars}
    assert set(first) == {"AAPL", "MSFT", "BTC/USD"}
    assert first["MSFT"].volume == 1200 and first["MSFT"].high == pytest.approx(400.4)
    assert fake.requests("GET", "/v2/stocks/bars/latest")[0]["symbols"] == "AAPL,MSFT"
    assert fake.requests("GET", "/v1beta3/crypto/us/latest/bars")[0]["symbols"] == "BTC/USD"
    second = {b.symbol: b for b in ticks[1].bars}
    assert second["AAPL"].open == pytest.approx(first["AAPL"].close)  # from the last close
    assert second["AAPL"].close == pytest.approx(first["AAPL"].close + 1.0)
    assert fake.requests("GET", "/v2/stocks/trades/latest")
    events = {e.symbols[0]: e for e in ticks[0].events}
    assert set(events) == {"AAPL", "BTC/USD"}
    assert events["AAPL"].sentiment > 0.5 and events["BTC/USD"].sentiment < -0.5
    assert events["AAPL"].narrative_id == "news:AAPL:2026-01-05"
    assert feed.stats.articles == 2
    news_query = fake.requests("GET", "/v1beta1/news")[0]
    assert news_query["symbols"] == "AAPL,MSFT,BTCUSD" and news_query["limit"] == "50"
    # later polls ask only since the newest article (with a minute of overlap)
    assert fake.requests("GET", "/v1beta1/news")[1]["start"].startswith("2026-01-05T07:58")


def test_transient_failures_skip_a_tick_then_give_up(fake: FakeAlpaca) -> None:
    feed = feed_for(fake, news=False, max_failures=3)
    fake.fail_next("GET", "/v2/stocks/bars/latest", 500, 500, 500, 500, 500, 500, 500, 500)
    bars, _ = feed.poll(NOW)
    assert bars == [] and feed.stats.price_failures == 1
    assert "500" in feed.stats.last_error
    fake.faults.clear()
    bars, _ = feed.poll(NOW + 5)
    assert len(bars) == 3
    fake.fail_next("GET", "/v2/stocks/trades/latest", *[500] * 16)
    feed.poll(NOW + 10)
    feed.poll(NOW + 15)
    with pytest.raises(RaweError, match="failed 3 polls in a row"):
        feed.poll(NOW + 20)


def test_rejected_data_keys_are_one_line_errors(fake: FakeAlpaca) -> None:
    cfg = AlpacaConfig("bad", "keys", data_url=fake.url, sdk_retry_wait=0, backoff=0)
    feed = AlpacaFeed(cfg, ("AAPL",), clock=fake.clock)  # type: ignore[attr-defined]
    with pytest.raises(RaweError, match="refused the request") as err:
        feed.poll(NOW)
    assert "\n" not in str(err.value)


def test_news_failure_does_not_stop_prices(fake: FakeAlpaca) -> None:
    feed = feed_for(fake)
    fake.fail_next("GET", "/v1beta1/news", 500, 500, 500, 500)
    bars, events = feed.poll(NOW)
    assert len(bars) == 3 and events == []
    assert feed.stats.news_failures == 1
