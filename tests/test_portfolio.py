import pytest

from rawe_cli.brokers.paper import PaperBroker
from rawe_cli.core.portfolio import EXIT_HORIZON, EXIT_STOP, EXIT_TAKE, Portfolio
from rawe_cli.models import Decision, Direction, Order, OrderStatus, Side


def decision(direction=Direction.LONG, asset="AAPL", horizon=300.0, stop=0.02, take=0.04):
    return Decision(
        id="d-1", timestamp=0.0, asset=asset, direction=direction, size=0.1, long_weight=3,
        short_weight=0, threshold=3, agents=("a",), opponents=(), proposal_ids=("p",),
        horizon=horizon, stop_loss=stop, take_profit=take, weights=(1.0,),
    )


def test_long_round_trip_with_fee_and_slippage():
    broker = PaperBroker(fee_bps=10, slippage_bps=20)  # 0.1% fee, 0.2% slippage
    broker.on_price("AAPL", 100.0, 0)
    buy = broker.submit(Order("d-1", "d-1", "AAPL", Side.BUY, 10, 100.0, "open", 0))
    assert buy.status is OrderStatus.FILLED
    assert buy.avg_price == pytest.approx(100.2)  # buyer pays the slippage
    assert buy.fee == pytest.approx(10 * 100.2 * 0.001)
    pf = Portfolio(10_000)
    pf.mark("AAPL", 100.0)
    pf.open_fill(decision(), buy.filled_qty, buy.avg_price, buy.fee, 0)
    assert pf.cash == pytest.approx(10_000 - 1002.0 - 1.002)
    broker.on_price("AAPL", 110.0, 60)
    sell = broker.submit(Order("d-1-x", "d-1", "AAPL", Side.SELL, 10, 110.0, "close", 60))
    assert sell.avg_price == pytest.approx(109.78)  # seller gets less
    closed = pf.close_fill("AAPL", 10, sell.avg_price, sell.fee, 60, EXIT_HORIZON)
    assert closed is not None
    expected = (109.78 - 100.2) * 10 - 1.002 - 10 * 109.78 * 0.001
    assert closed.pnl == pytest.approx(expected)
    assert pf.realized == pytest.approx(expected)
    assert pf.cash == pytest.approx(10_000 + expected)
    assert pf.positions == {}


def test_short_round_trip_profits_when_price_falls():
    pf = Portfolio(10_000)
    pf.mark("AAPL", 100.0)
    pf.open_fill(decision(Direction.SHORT), 5, 100.0, 0.5, 0)
    assert pf.cash == pytest.approx(10_000 + 500 - 0.5)  # short sale proceeds credited
    pf.mark("AAPL", 90.0)
    assert pf.unrealized() == pytest.approx(5 * 10 - 0.5)
    closed = pf.close_fill("AAPL", 5, 90.0, 0.45, 10, EXIT_TAKE)
    assert closed is not None and closed.direction is Direction.SHORT
    assert closed.pnl == pytest.approx(50 - 0.5 - 0.45)
    assert closed.fees == pytest.approx(0.95)


def test_short_loses_when_price_rises():
    pf = Portfolio(1_000)
    pf.mark("X", 10.0)
    pf.open_fill(decision(Direction.SHORT, asset="X"), 10, 10.0, 0.0, 0)
    closed = pf.close_fill("X", 10, 12.0, 0.0, 1, EXIT_STOP)
    assert closed is not None and closed.pnl == pytest.approx(-20.0)


@pytest.mark.parametrize("direction", [Direction.LONG, Direction.SHORT])
def test_equity_is_initial_plus_realized_plus_unrealized(direction):
    pf = Portfolio(50_000)
    pf.mark("AAPL", 200.0)
    pf.open_fill(decision(direction), 20, 200.5, 2.0, 0)
    for price in (190.0, 205.0, 212.3):
        pf.mark("AAPL", price)
        assert pf.equity() == pytest.approx(50_000 + pf.realized + pf.unrealized())
    pf.close_fill("AAPL", 8, 212.0, 0.8, 5, EXIT_HORIZON)  # partial close
    assert pf.positions["AAPL"].qty == pytest.approx(12)
    assert pf.equity() == pytest.approx(50_000 + pf.realized + pf.unrealized())
    closed = pf.close_fill("AAPL", 12, 213.0, 1.2, 6, EXIT_HORIZON)
    assert closed is not None and closed.qty == pytest.approx(20)
    assert pf.realized == pytest.approx(closed.pnl)
    assert pf.equity() == pytest.approx(50_000 + closed.pnl)


def test_partial_open_fills_average_the_entry():
    pf = Portfolio(10_000)
    pf.mark("AAPL", 100.0)
    d = decision()
    pf.open_fill(d, 4, 100.0, 0.1, 0)
    pf.open_fill(d, 6, 101.0, 0.2, 1)
    pos = pf.positions["AAPL"]
    assert pos.qty == 10 and pos.entry_price == pytest.approx(100.6)
    assert pos.entry_fee == pytest.approx(0.3)


def test_exits_stop_take_and_horizon():
    pf = Portfolio(10_000)
    pf.mark("AAPL", 100.0)
    pf.open_fill(decision(horizon=100, stop=0.02, take=0.04), 1, 100.0, 0, 0)
    assert pf.exit_reason("AAPL", 10) is None
    pf.mark("AAPL", 97.9)
    assert pf.exit_reason("AAPL", 10) == EXIT_STOP
    pf.mark("AAPL", 104.1)
    assert pf.exit_reason("AAPL", 10) == EXIT_TAKE
    pf.mark("AAPL", 101.0)
    assert pf.exit_reason("AAPL", 99) is None
    assert pf.exit_reason("AAPL", 100) == EXIT_HORIZON
    assert pf.due_exits(100) == [("AAPL", EXIT_HORIZON)]


def test_short_stop_is_a_rise():
    pf = Portfolio(10_000)
    pf.mark("AAPL", 100.0)
    pf.open_fill(decision(Direction.SHORT), 1, 100.0, 0, 0)
    pf.mark("AAPL", 102.5)
    assert pf.exit_reason("AAPL", 1) == EXIT_STOP


def test_bad_fills_are_refused():
    pf = Portfolio(100)
    with pytest.raises(ValueError):
        pf.open_fill(decision(), 0, 100.0, 0, 0)
    with pytest.raises(ValueError):
        pf.close_fill("AAPL", 1, 100.0, 0, 0, EXIT_HORIZON)


def test_paper_broker_is_idempotent_by_client_order_id():
    broker = PaperBroker()
    broker.on_price("AAPL", 100.0, 0)
    order = Order("d-9", "d-9", "AAPL", Side.BUY, 1, 100.0, "open", 0)
    first = broker.submit(order)
    broker.on_price("AAPL", 150.0, 1)
    again = broker.submit(order)
    assert again == first  # a retry returns the same fill, never a second trade
    assert broker.poll("d-9") == first
    assert broker.poll("nope").status is OrderStatus.REJECTED
