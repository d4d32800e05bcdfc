"""The collective trading through AlpacaBroker (real alpaca-py, fake server): decisions become
orders with client_order_id = decision id, fills and realized P&L come from Alpaca's fills,
rejections are recorded, the market clock gates equities, and a restart reconciles."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import fakeredis
import pytest

from rawe_cli.brokers.alpaca import AlpacaBroker, AlpacaConfig
from rawe_cli.bus.keys import Keys
from rawe_cli.bus.store import Store
from rawe_cli.collective import CLOSED, OPEN, PENDING, REJECTED, SKIPPED, Collective
from rawe_cli.config import Settings
from rawe_cli.core.weighting import AgentRecord, MajorityScheme
from rawe_cli.models import Bar, Decision, Direction, OrderStatus, Proposal

try:
    from fake_alpaca import FakeAlpaca
except ImportError:  # tests/ as a package
    from tests.fake_alpaca import FakeAlpaca

pytestmark = pytest.mark.timeout(30)
AGENTS = ("ann", "bob", "cy")
T0 = 1_767_225_600.0


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        server.prices.update({"AAPL": 200.0, "MSFT": 400.0, "NVDA": 100.0, "BTC/USD": 50_000.0})
        yield server


def broker_for(fake: FakeAlpaca, **kw: object) -> AlpacaBroker:
    cfg = AlpacaConfig(fake.key, fake.secret, trading_url=fake.url, sdk_retry_wait=0,
                       backoff=0, **kw)  # type: ignore[arg-type]
    return AlpacaBroker(cfg)


def collective(broker: AlpacaBroker) -> Collective:
    settings = Settings(threshold=3.0, scheme="majority", max_position_fraction=0.25)
    records = {a: AgentRecord(a, a) for a in AGENTS}
    return Collective(settings, records, MajorityScheme(), broker)


def mark(col: Collective, fake: FakeAlpaca, now: float, **prices: float) -> None:
    for key, price in prices.items():
        symbol = "BTC/USD" if key == "BTC" else key
        fake.prices[symbol] = price
        col.on_bar(Bar(now, symbol, price, price, price, price))


def vote(col: Collective, asset: str, now: float, direction: Direction = Direction.LONG,
         size: float = 0.1) -> Decision:
    decision = None
    for agent in AGENTS:
        p = Proposal(id=f"p-{asset}-{agent}-{now}", agent=agent, asset=asset,
                     direction=direction, size=size, expected_profit=0.03, risk_score=0.2,
                     narrative_id="n-1", signal_type="narrative_leads", timestamp=now,
                     horizon=600.0, stop_loss=0.02, take_profit=0.04)
        _, decision = col.on_proposal(p, now)
    assert decision is not None
    return decision


def test_decision_order_fill_exit_and_realized_pnl_from_alpaca_fills(
        fake: FakeAlpaca) -> None:
    col = collective(broker_for(fake))
    mark(col, fake, T0, AAPL=200.0)
    d = vote(col, "AAPL", T0 + 1)
    [posted] = fake.order_posts()
    assert posted["client_order_id"] == d.id and posted["side"] == "buy"
    entry = col.ledger[d.id]
    assert entry.status == OPEN and entry.order_status is OrderStatus.FILLED
    assert entry.filled_qty == pytest.approx(0.1 * 100_000 / 200.0)
    assert col.portfolio.positions["AAPL"].entry_price == pytest.approx(200.0)
    # the price runs past take-profit: the exit goes through Alpaca as <id>-x
    mark(col, fake, T0 + 10, AAPL=210.0)
    assert fake.order_posts()[-1]["client_order_id"] == f"{d.id}-x"
    assert fake.order_posts()[-1]["side"] == "sell"
    assert entry.status == CLOSED and entry.exit_reason == "take_profit"
    assert entry.pnl == pytest.approx((210.0 - 200.0) * 50.0)
    assert col.portfolio.realized == pytest.approx(500.0)
    assert "AAPL" not in fake.positions  # flat at Alpaca too
    assert col.records["ann"].wins == 1


def test_partial_fills_are_followed_by_polling(fake: FakeAlpaca) -> None:
    fake.fill_plan = [0.0, 0.3, 1.0]
    col = collective(broker_for(fake))
    mark(col, fake, T0, MSFT=400.0)
    d = vote(col, "MSFT", T0 + 1)
    assert col.ledger[d.id].status == PENDING and "MSFT" not in col.portfolio.positions
    col.poll_orders(T0 + 2)
    assert col.ledger[d.id].order_status is OrderStatus.PARTIALLY_FILLED
    assert col.portfolio.positions["MSFT"].qty == pytest.approx(0.3 * 25.0)
    fake.prices["MSFT"] = 402.0
    col.poll_orders(T0 + 3)
    entry = col.ledger[d.id]
    assert entry.order_status is OrderStatus.FILLED and entry.filled_qty == pytest.approx(25.0)
    assert entry.avg_price == pytest.approx((7.5 * 400 + 17.5 * 402) / 25)
    assert col.pending == {}


def test_403_is_recorded_on_the_decision_and_the_engine_carries_on(fake: FakeAlpaca) -> None:
    fake.buying_power = 1_000.0
    col = collective(broker_for(fake))
    mark(col, fake, T0, AAPL=200.0, NVDA=100.0)
    d1 = vote(col, "AAPL", T0 + 1)
    entry = col.ledger[d1.id]
    assert entry.status == REJECTED and "insufficient buying power" in entry.reason
    assert col.pending == {} and col.portfolio.positions == {}
    fake.buying_power = 1e9
    d2 = vote(col, "NVDA", T0 + 2)
    assert col.ledger[d2.id].status == OPEN
    d3 = vote(col, "AAPL", T0 + 30)  # the refused asset is free to trade again
    assert col.ledger[d3.id].status == OPEN


def test_market_closed_skips_equity_decisions_trades_crypto_and_exits_wait(
        fake: FakeAlpaca) -> None:
    broker = broker_for(fake, clock_ttl=0.0)
    col = collective(broker)
    mark(col, fake, T0, AAPL=200.0, BTC=50_000.0)
    opened = vote(col, "AAPL", T0 + 1)
    assert col.ledger[opened.id].status == OPEN
    fake.market_open = False
    mark(col, fake, T0 + 3, MSFT=400.0)
    skipped = vote(col, "MSFT", T0 + 4)
    entry = col.ledger[skipped.id]
    assert entry.status == SKIPPED and entry.reason.startswith("market closed")
    coin = vote(col, "BTC/USD", T0 + 5)
    assert col.ledger[coin.id].status == OPEN
    assert fake.order_posts()[-1]["symbol"] == "BTC/USD"
    # AAPL hits its stop while closed: the exit waits for a bar after the open
    posts = len(fake.order_posts())
    mark(col, fake, T0 + 6, AAPL=190.0)
    assert len(fake.order_posts()) == posts and "AAPL" in col.portfolio.positions
    fake.market_open = True
    mark(col, fake, T0 + 7, AAPL=190.0)
    assert fake.order_posts()[-1]["client_order_id"] == f"{opened.id}-x"
    assert col.ledger[opened.id].exit_reason == "stop_loss"
    assert col.ledger[opened.id].pnl == pytest.approx(-10.0 * 50.0)


def test_restart_reconciles_pending_orders_positions_and_unknowns(fake: FakeAlpaca) -> None:
    server = fakeredis.FakeServer()

    async def scenario() -> None:
        store = Store(fakeredis.FakeAsyncRedis(server=server, decode_responses=True), Keys("t"))
        # run 1: an order Alpaca holds unfilled, one that never reached it, then a crash
        fake.hold = True
        col = collective(broker_for(fake, attempts=2))
        mark(col, fake, T0, AAPL=200.0, NVDA=100.0)
        held = vote(col, "AAPL", T0 + 1)
        fake.fail_next("POST", "/v2/orders", 500, 500)
        lost = vote(col, "NVDA", T0 + 2)
        assert col.ledger[held.id].status == PENDING and col.ledger[lost.id].status == PENDING
        await store.save(col)
        # behind the ledger's back: a filled order of someone else, an open manual order
        fake.hold = False
        fake.add_order("MSFT", "buy", 5, "manual-filled")
        fake.hold = True
        fake.add_order("TSLA", "buy", 1, "manual-open")
        fake.release(only={held.id})

        # run 2: restore, reconcile
        col2 = collective(broker_for(fake))
        await store.restore(col2)
        report = col2.broker.reconcile(col2, T0 + 60)
        assert [r.split()[0] for r in report.resumed] == [held.id]
        assert "filled 50" in report.resumed[0]
        assert col2.ledger[held.id].status == OPEN
        assert col2.portfolio.positions["AAPL"].qty == pytest.approx(50.0)
        assert report.not_found == [f"{lost.id} NVDA"]
        assert col2.ledger[lost.id].status == REJECTED
        assert report.matched == ["AAPL long 50"]
        assert report.unknown_positions == ["MSFT long 5"]
        assert "MSFT" not in col2.portfolio.positions  # reported, never adopted
        assert [o.split()[0] for o in report.unknown_orders] == ["manual-open"]
        assert report.lines()[0].startswith("reconciled with Alpaca: 1 pending order(s) "
                                            "resumed, 1 not found")
        await store.save(col2)
        assert len([p for p in fake.order_posts() if p["client_order_id"] == held.id]) == 1

        # run 2 sends the exit, Alpaca holds it, crash again; run 3 finds and applies it
        fake.hold = True
        mark(col2, fake, T0 + 70, AAPL=212.0)
        assert f"{held.id}-x" in col2.pending
        await store.save(col2)
        fake.release(only={f"{held.id}-x"})
        col3 = collective(broker_for(fake))
        await store.restore(col3)
        report3 = col3.broker.reconcile(col3, T0 + 80)
        assert [e.split()[0] for e in report3.exits] == [f"{held.id}-x"]
        entry = col3.ledger[held.id]
        assert entry.status == CLOSED
        assert entry.pnl == pytest.approx((212.0 - 200.0) * 50.0)
        assert "AAPL" not in col3.portfolio.positions
        assert col3.portfolio.realized == pytest.approx(600.0)

    asyncio.run(scenario())


def test_a_replayed_decision_after_a_crash_is_recovered_not_traded_twice(
        fake: FakeAlpaca) -> None:
    # the order went out, the crash came before the ledger was saved: the same proposals
    # come back from the bus and make the same decision, whose submission is a duplicate
    col = collective(broker_for(fake))
    mark(col, fake, T0, AAPL=200.0)
    first = vote(col, "AAPL", T0 + 1)
    col2 = collective(broker_for(fake))
    mark(col2, fake, T0, AAPL=200.0)
    again = vote(col2, "AAPL", T0 + 1)
    assert again.id == first.id
    assert len(fake.orders) == 1
    assert col2.broker.stats.recovered == 1
    assert col2.ledger[again.id].status == OPEN
    assert col2.portfolio.positions["AAPL"].qty == pytest.approx(50.0)
