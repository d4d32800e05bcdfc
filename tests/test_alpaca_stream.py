"""Alpaca off the engine loop (brokers/alpaca_streaming.py): the real alpaca-py TradingStream
against the fake's trade-update stream on 127.0.0.1, the REST fallback while it is down, the
catch-up after it reconnects, a stalled submission that holds up no other asset, the rate
limit, and where the streams are (alpaca_urls)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rawe_cli.brokers.alpaca import AlpacaBroker, AlpacaConfig
from rawe_cli.brokers.alpaca_streaming import StreamingAlpacaBroker
from rawe_cli.brokers.alpaca_urls import data_stream_url, trading_stream_url, ws_url
from rawe_cli.brokers.ratelimit import TokenBucket
from rawe_cli.brokers.trade_updates import UpdateMerge
from rawe_cli.collective import CLOSED, OPEN, PENDING, REJECTED, Collective
from rawe_cli.config import Settings
from rawe_cli.core.weighting import AgentRecord, MajorityScheme
from rawe_cli.models import Bar, Decision, Direction, OrderStatus, OrderUpdate, Proposal

try:
    from fake_alpaca import FakeAlpaca
except ImportError:  # tests/ as a package
    from tests.fake_alpaca import FakeAlpaca

pytestmark = pytest.mark.timeout(120)
AGENTS = ("ann", "bob", "cy")
T0 = 1_767_225_600.0
WAIT = 60.0  # generous: conditions, never sleeps as assertions


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        server.prices.update({"AAPL": 200.0, "MSFT": 400.0, "NVDA": 100.0, "BTC/USD": 50_000.0})
        server.fill_every = 0.02  # orders fill by themselves, as at Alpaca
        yield server


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def make(fake: FakeAlpaca, lines: list[str]) -> Iterator[Callable[..., StreamingAlpacaBroker]]:
    made: list[StreamingAlpacaBroker] = []

    def build(**kw: Any) -> StreamingAlpacaBroker:
        cfg = AlpacaConfig(fake.key, fake.secret, trading_url=fake.url, sdk_retry_wait=0,
                           backoff=0, rate_limit=kw.pop("rate_limit", 100_000.0))
        broker = StreamingAlpacaBroker(AlpacaBroker(cfg, say=lines.append),
                                       say=lines.append, **kw)
        before = fake.stream_connections
        made.append(broker.start())
        # alpaca-py is "up" once it has sent `listen`, before the server has read it (its
        # catch-up covers that gap for real): let the fake subscribe it before a test trades
        deadline = time.monotonic() + 5.0
        while broker.up and fake.stream_connections == before and time.monotonic() < deadline:
            time.sleep(0.005)
        return broker

    yield build
    for broker in made:
        broker.close(timeout=1.0)


def collective(broker: Any) -> Collective:
    settings = Settings(threshold=3.0, scheme="majority", max_position_fraction=0.2)
    return Collective(settings, {a: AgentRecord(a, a) for a in AGENTS}, MajorityScheme(), broker)


def mark(col: Collective, fake: FakeAlpaca, now: float, **prices: float) -> None:
    for symbol, price in prices.items():
        fake.prices[symbol] = price
        col.on_bar(Bar(now, symbol, price, price, price, price))


def vote(col: Collective, asset: str, now: float) -> Decision:
    decision = None
    for agent in AGENTS:
        p = Proposal(id=f"p-{asset}-{agent}-{now}", agent=agent, asset=asset,
                     direction=Direction.LONG, size=0.1, expected_profit=0.03, risk_score=0.2,
                     narrative_id="n-1", signal_type="narrative_leads", timestamp=now,
                     horizon=600.0, stop_loss=0.02, take_profit=0.04)
        _, decision = col.on_proposal(p, now)
    assert decision is not None
    return decision


def until(col: Collective, now: float, predicate: Callable[[], Any]) -> Any:
    """Apply the broker's events (as the engine does each turn) until `predicate` holds."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        col.poll_orders(now)
        got = predicate()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"condition not met in {WAIT} s")


def fake_order(fake: FakeAlpaca, coid: str) -> dict[str, Any]:
    with fake.lock:
        return dict(fake.orders[fake.by_coid[coid]])


# -- a fill that arrives only by stream -----------------------------------------------------------


def test_fills_arrive_by_stream_with_no_rest_read(fake: FakeAlpaca, make: Any) -> None:
    broker = make()
    assert broker.up and fake.stream_connections == 1
    col = collective(broker)
    mark(col, fake, T0, AAPL=200.0)
    d = vote(col, "AAPL", T0 + 1)
    assert col.ledger[d.id].status == PENDING  # submitted: the engine did not wait
    entry = until(col, T0 + 2, lambda: col.ledger[d.id].status == OPEN and col.ledger[d.id])
    assert entry.order_status is OrderStatus.FILLED
    assert entry.filled_qty == pytest.approx(float(fake_order(fake, d.id)["filled_qty"]))
    # the exit (take-profit) is filled by stream too, and realized P&L is Alpaca's fills'
    mark(col, fake, T0 + 10, AAPL=210.0)
    until(col, T0 + 11, lambda: col.ledger[d.id].status == CLOSED)
    assert col.ledger[d.id].pnl == pytest.approx(
        (float(fake_order(fake, f"{d.id}-x")["filled_avg_price"])
         - float(fake_order(fake, d.id)["filled_avg_price"])) * entry.filled_qty)
    assert fake.order_reads(d.id) == 0 and fake.order_reads(f"{d.id}-x") == 0
    assert broker.stats.order_reads == 0 and broker.stats.stream_updates >= 2


def test_partial_fills_cancels_and_rejections_by_stream(fake: FakeAlpaca, make: Any) -> None:
    col = collective(make())
    mark(col, fake, T0, AAPL=200.0, MSFT=400.0, NVDA=100.0)
    fake.fill_plan = [0.0, 0.4, 1.0]
    full = vote(col, "AAPL", T0 + 1)
    until(col, T0 + 2, lambda: col.ledger[full.id].order_status is OrderStatus.FILLED)
    assert col.portfolio.positions["AAPL"].qty == pytest.approx(50.0)
    fake.fill_plan = [0.5]  # half, then Alpaca cancels the rest
    half = vote(col, "MSFT", T0 + 3)
    until(col, T0 + 4, lambda: col.ledger[half.id].order_status is OrderStatus.CANCELED)
    assert col.ledger[half.id].status == OPEN
    assert col.portfolio.positions["MSFT"].qty == pytest.approx(12.5)
    fake.hold = True
    refused = vote(col, "NVDA", T0 + 5)
    until(col, T0 + 5, lambda: refused.id in fake.by_coid)
    fake.reject(refused.id)
    until(col, T0 + 6, lambda: col.ledger[refused.id].status == REJECTED)
    assert "NVDA" not in col.portfolio.positions and col.pending == {}
    for d in (full, half, refused):
        assert fake.order_reads(d.id) == 0


def test_the_same_execution_twice_counts_once(fake: FakeAlpaca, make: Any) -> None:
    col = collective(make())
    mark(col, fake, T0, AAPL=200.0)
    fake.fill_plan = [0.0, 0.5, 1.0]
    d = vote(col, "AAPL", T0 + 1)
    until(col, T0 + 2, lambda: col.ledger[d.id].order_status is OrderStatus.FILLED)
    before = col.portfolio.positions["AAPL"].qty
    fake.replay_last_event()  # Alpaca sends the fill again, same execution id
    fake.replay_last_event()
    until(col, T0 + 3, lambda: len(fake.stream_sent) >= 5)
    time.sleep(0.2)  # let the replays arrive (nothing may change: checked below)
    col.poll_orders(T0 + 4)
    assert col.portfolio.positions["AAPL"].qty == pytest.approx(before)
    assert col.ledger[d.id].filled_qty == pytest.approx(before)


def test_update_merge_is_idempotent_by_execution_id_and_cumulative_state() -> None:
    merge = UpdateMerge()
    part = OrderUpdate("o1", OrderStatus.PARTIALLY_FILLED, filled_qty=5, avg_price=10.0)
    full = OrderUpdate("o1", OrderStatus.FILLED, filled_qty=10, avg_price=10.5)
    assert merge.offer(part, "e1") is part
    assert merge.offer(full, "e1") is None  # an execution id seen: dropped, whatever it says
    assert merge.offer(part) is None  # the same state again (a REST read after the stream)
    assert merge.offer(OrderUpdate("o1", OrderStatus.SUBMITTED)) is None  # older state
    assert merge.offer(full, "e2") is full
    assert merge.offer(full, "e3") is None  # nothing after a final state
    canceled = OrderUpdate("o2", OrderStatus.CANCELED, filled_qty=0)
    assert merge.offer(OrderUpdate("o2", OrderStatus.SUBMITTED)) is not None
    assert merge.offer(canceled) is canceled


# -- the stream goes down ------------------------------------------------------------------------


def test_fills_while_the_stream_is_down_are_caught_up_once(
        fake: FakeAlpaca, make: Any, lines: list[str]) -> None:
    broker = make(poll_first=30.0, poll_cap=30.0)  # no fallback poll in time: the catch-up
    col = collective(broker)
    mark(col, fake, T0, AAPL=200.0, MSFT=400.0, NVDA=100.0)
    fake.hold = True  # Alpaca accepts and waits
    a = vote(col, "AAPL", T0 + 1)
    b = vote(col, "MSFT", T0 + 1)
    until(col, T0 + 1, lambda: not broker.busy)
    fake.stream_refuse = True
    fake.stream_drop(1011)
    until(col, T0 + 2, lambda: not broker.up)
    assert sum("trade-update stream down" in line for line in lines) == 1
    # the poll at the drop has read both (still open) before they fill: on a busy machine it
    # could come after the fills, and tell the engine before the stream is back
    until(col, T0 + 2, lambda: fake.order_reads(a.id) >= 1 and fake.order_reads(b.id) >= 1)
    fake.release([1.0], only={a.id})  # filled while nobody listens
    fake.release([0.5, 1.0], only={b.id})  # in two fills, while down
    until(col, T0 + 2, lambda: float(fake_order(fake, a.id)["filled_qty"]) > 0
          and float(fake_order(fake, b.id)["filled_qty"]) > 0)
    c = vote(col, "NVDA", T0 + 3)  # decided and sent while the stream is down
    time.sleep(0.3)  # the outage lasts a while (the client keeps retrying: 503)
    assert col.ledger[a.id].status == PENDING  # nobody told the engine yet
    fake.stream_refuse = False
    until(col, T0 + 4, lambda: broker.up and any("caught up" in x for x in lines))
    until(col, T0 + 4, lambda: all(col.ledger[d.id].filled_qty > 0 for d in (a, b, c)))
    # the replayed stream fill of A, the catch-up's answer and the fake's own events: once
    fake.replay_last_event()
    time.sleep(0.2)
    col.poll_orders(T0 + 5)
    for d in (a, b, c):
        order = fake_order(fake, d.id)
        assert col.ledger[d.id].filled_qty == pytest.approx(float(order["filled_qty"]))
        assert col.ledger[d.id].avg_price == pytest.approx(float(order["filled_avg_price"]))
        # a poll at the drop, the catch-up, a follow-up of a submission sent while down
        assert fake.order_reads(d.id) <= 3
    for symbol, pos in col.portfolio.positions.items():
        assert pos.qty == pytest.approx(fake.positions[symbol]["qty"])
    assert broker.stats.stream_drops == 1 and fake.stream_connections == 2


def test_while_the_stream_is_down_orders_are_polled_with_backoff(
        fake: FakeAlpaca, make: Any, lines: list[str]) -> None:
    fake.stream_refuse = True  # down from the start
    broker = make(poll_first=0.05, poll_cap=0.4, connect_wait=0.3)
    assert not broker.up
    assert any("not connected" in line and "REST polling" in line for line in lines)
    col = collective(broker)
    mark(col, fake, T0, AAPL=200.0, NVDA=100.0)
    fake.hold = True
    held = vote(col, "AAPL", T0 + 1)
    filled = vote(col, "NVDA", T0 + 1)
    until(col, T0 + 1, lambda: not broker.busy)  # both accepted (and held) by Alpaca
    fake.release([1.0], only={filled.id})
    until(col, T0 + 2, lambda: col.ledger[filled.id].status == OPEN)  # by REST polling
    until(col, T0 + 2, lambda: fake.order_reads(held.id) >= 6)
    with fake.lock:
        times = [t for (m, p, body), t in zip(fake.log, fake.log_times, strict=True)
                 if m == "GET" and body.get("client_order_id") == held.id]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[3] > 1.5 * gaps[0]  # the waits grow (0.05, 0.1, 0.2, 0.4 s, capped)
    assert gaps[-1] >= 0.3
    assert fake.stream_sent and broker.stats.stream_updates == 0  # nothing came by stream


# -- the engine never waits for Alpaca ------------------------------------------------------------


def test_a_stalled_submission_delays_no_other_asset(fake: FakeAlpaca, make: Any) -> None:
    col = collective(make())
    mark(col, fake, T0, AAPL=200.0, MSFT=400.0, NVDA=100.0, **{"BTC/USD": 50_000.0})
    fake.stall_next("POST", "/v2/orders", 5.0, symbol="AAPL")  # Alpaca hangs for 5 s
    began = time.monotonic()
    slow = vote(col, "AAPL", T0 + 1)
    decided: dict[str, float] = {}
    others = []
    for asset in ("MSFT", "NVDA", "BTC/USD"):
        others.append(vote(col, asset, T0 + 1))
        decided[asset] = time.monotonic() - began
    until(col, T0 + 2, lambda: all(col.ledger[d.id].status == OPEN for d in others))
    all_filled = time.monotonic() - began
    with fake.lock:
        still_stalled = not fake.stalled  # the AAPL request has not been answered yet
    assert still_stalled, "the other assets' orders waited for the stalled one"
    assert col.ledger[slow.id].status == PENDING
    assert all_filled < 5.0 and max(decided.values()) < 5.0
    print(f"\nstalled AAPL POST (5 s): decisions on 3 other assets after "
          f"{max(decided.values()) * 1000:.1f} ms, their orders filled after "
          f"{all_filled * 1000:.0f} ms")
    until(col, T0 + 3, lambda: col.ledger[slow.id].status == OPEN)  # once Alpaca answers
    assert time.monotonic() - began >= 4.9


# -- rate limit ---------------------------------------------------------------------------------


def test_token_bucket_keeps_any_minute_under_the_limit_and_says_it_once() -> None:
    now = [0.0]
    said: list[str] = []
    bucket = TokenBucket(200, 40, clock=lambda: now[0],
                         sleep=lambda s: now.__setitem__(0, now[0] + s), say=said.append)
    stamps = []
    for _ in range(600):
        bucket.acquire()
        stamps.append(now[0])
    assert stamps[39] == 0.0 and stamps[40] > 0.0  # the burst, then one at a time
    for i, t in enumerate(stamps):  # no 60 s window holds more than 200 requests
        assert sum(1 for u in stamps[i:i + 201] if u < t + 60.0 - 1e-6) <= 200
    assert len(said) == 1 and "200 a minute" in said[0]
    now[0] += 3600.0
    bucket.acquire()  # a quiet hour later: at once, and the next run of waits is said again
    for _ in range(60):
        bucket.acquire()
    assert len(said) == 2


def test_trading_requests_take_tokens_with_one_line_when_throttled(
        fake: FakeAlpaca, lines: list[str]) -> None:
    cfg = AlpacaConfig(fake.key, fake.secret, trading_url=fake.url, sdk_retry_wait=0,
                       backoff=0, rate_limit=1200.0)  # a burst of 40, then 19 a second
    broker = AlpacaBroker(cfg, say=lines.append)
    for _ in range(50):
        broker.client.get_clock()
    assert len(fake.requests("GET", "/v2/clock")) == 50
    assert 1 <= broker.stats.throttled <= 10
    assert [x for x in lines if "request rate at its limit" in x] == lines and len(lines) == 1


# -- where the streams are ------------------------------------------------------------------------


def test_stream_urls_derive_from_the_rest_urls() -> None:
    assert trading_stream_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/stream"
    assert trading_stream_url("https://paper-api.alpaca.markets") == (
        "wss://paper-api.alpaca.markets/stream")
    assert trading_stream_url("https://proxy.example/alpaca/") == (
        "wss://proxy.example/alpaca/stream")
    assert trading_stream_url(None) is None  # alpaca-py's own default
    base = "http://127.0.0.1:9"
    assert data_stream_url(base, "stock") == "ws://127.0.0.1:9/v2/iex"
    assert data_stream_url(base, "stock", "sip") == "ws://127.0.0.1:9/v2/sip"
    assert data_stream_url(base, "crypto") == "ws://127.0.0.1:9/v1beta3/crypto/us"
    assert data_stream_url(base, "news") == "ws://127.0.0.1:9/v1beta1/news"
    assert data_stream_url("https://data.alpaca.markets", "news") == (
        "wss://stream.data.alpaca.markets/v1beta1/news")
    assert data_stream_url(None, "crypto") is None
    assert ws_url("https://data.sandbox.alpaca.markets") == (
        "wss://stream.data.sandbox.alpaca.markets")
    with pytest.raises(ValueError):
        data_stream_url(base, "stock", "otc")
    with pytest.raises(ValueError):
        ws_url("ftp://x")


# -- a whole run ------------------------------------------------------------------------------


def test_a_paced_run_reads_each_filled_order_at_most_twice_and_books_every_fill(
        fake: FakeAlpaca, lines: list[str]) -> None:
    """`rawe run --broker alpaca` (paced, not --fast: nothing waits for Alpaca) against the
    fake, whose orders fill by themselves and whose stream drops once mid-run."""
    import asyncio
    from collections.abc import AsyncIterator

    from rawe_cli.app.runtime import RunOptions, run_embedded, world_params
    from rawe_cli.brokers.factory import make_broker
    from rawe_cli.config import load_personalities, pick_agents
    from rawe_cli.feeds.base import Tick
    from rawe_cli.feeds.synthetic import SyntheticFeed

    settings = Settings(scheme="majority")  # no meta gate: more trades
    feed = SyntheticFeed(world_params(settings), 1200, 2000.0)  # 2.5 ms a tick

    back: list[float] = []  # when the stream was listening again after the drop

    async def follow() -> AsyncIterator[Tick]:
        async for tick in feed.ticks():
            for bar in tick.bars:
                fake.prices[bar.symbol] = bar.close
            if tick.index == 600:
                fake.stream_drop(1011)  # the client reconnects by itself
            if tick.index > 600 and not back and fake.stream_connections >= 2:
                back.append(time.monotonic())
            yield tick
        with fake.lock:  # the market closes with the feed: what filled is final
            fake.fill_every = None
            fake.hold = True

    class Following:
        def ticks(self) -> AsyncIterator[Tick]:
            return follow()

    env = {**fake.env(), "RAWE_ALPACA_RATE_LIMIT": "100000"}
    broker = make_broker("alpaca", settings, env=env, log=lines.append)
    agents = pick_agents(load_personalities(None), 8, settings.seed)
    result = asyncio.run(run_embedded(RunOptions(settings, agents, broker=broker,
                                                 feed=Following())))
    decisions = {d["id"]: d for d in result["decisions"]}
    with fake.lock:
        orders = [dict(o) for o in fake.orders.values()]
    filled = [o for o in orders if float(o["filled_qty"]) > 0]
    assert len(filled) >= 4, "the run should trade"
    reads = {o["client_order_id"]: fake.order_reads(o["client_order_id"]) for o in filled}
    # The normal case, an order sent while the stream is up: at most 2 REST reads. An order
    # still open when the stream dropped is also read at the drop, at each back-off poll
    # while it is down (0.5 s, then doubling) and at the catch-up: on a busy machine that is
    # 3 or 4.
    assert back, "the stream should have come back"
    with fake.lock:
        log = list(zip(fake.log, fake.log_times, strict=True))
    sent = {e[2].get("client_order_id"): t for e, t in log
            if e[0] == "POST" and e[1] == "/v2/orders"}
    normal = {c: n for c, n in reads.items() if sent.get(c, 0.0) > back[0]}
    assert normal and max(normal.values()) <= 2, normal
    assert max(reads.values()) <= 5, reads
    for o in orders:  # every fill the fake made is in the ledger
        coid = o["client_order_id"]
        if coid in decisions and decisions[coid]["status"] != "flattened":
            assert decisions[coid]["filled_qty"] == pytest.approx(float(o["filled_qty"]))
    held = {p["asset"]: p["qty"] for p in result["portfolio"]["open_positions"]}
    at_fake = {pos.get("symbol", key): pos["qty"] for key, pos in fake.positions.items()}
    assert held == pytest.approx({s: abs(q) for s, q in at_fake.items()})
    assert result["broker"]["stream_updates"] > 0
    print(f"\n{len(filled)} filled orders, REST reads per filled order: "
          f"{sorted(reads.values())}; broker {result['broker']}")
