import pytest

from rawe_cli.brokers.paper import PaperBroker
from rawe_cli.collective import CLOSED, FLATTENED, OPEN, SKIPPED, Collective
from rawe_cli.config import Settings
from rawe_cli.core import consensus as cs
from rawe_cli.core.weighting import AgentRecord, WinRateScheme
from rawe_cli.models import Bar, Direction, Proposal

T0 = 1_767_225_600.0
AGENTS = ("a", "b", "c", "d")


def make(**settings) -> Collective:
    s = Settings(**{"fee_bps": 10, "slippage_bps": 0, "threshold": 3.0, "window": 10.0, **settings})
    recs = {n: AgentRecord(n, n) for n in AGENTS}
    return Collective(s, recs, WinRateScheme(), PaperBroker(fee_bps=10, slippage_bps=0))


def bar(t: float, price: float, symbol: str = "AAPL") -> Bar:
    return Bar(t, symbol, price, price, price, price, 1)


def vote(agent: str, direction=Direction.LONG, t=T0, pid=None, size=0.1, asset="AAPL",
         horizon=60.0) -> Proposal:
    return Proposal(pid or f"{agent}-{asset}-{t}-{direction.value}", agent, asset, direction, size,
                    0.01, 0.2, "n", "narrative_leads", t, horizon=horizon, stop_loss=0.05,
                    take_profit=0.1)


def test_decision_opens_closes_and_moves_weights_with_real_pnl():
    col = make()
    col.on_bar(bar(T0, 100.0))
    col.on_proposal(vote("a"), T0)
    col.on_proposal(vote("b"), T0)
    col.on_proposal(vote("d", Direction.SHORT), T0)
    status, decision = col.on_proposal(vote("c"), T0)
    assert status == cs.DECIDED and decision is not None
    assert decision.agents == ("a", "b", "c") and decision.opponents == ("d",)
    entry = col.ledger[decision.id]
    assert entry.status == OPEN and entry.filled_qty == pytest.approx(100.0)  # 10% of 100k
    assert col.records["a"].votes == 1
    col.on_bar(bar(T0 + 30, 103.0))
    assert col.portfolio.unrealized() == pytest.approx(300 - 10.0)
    col.on_bar(bar(T0 + 60, 104.0))  # horizon reached: closes at 104
    assert entry.status == CLOSED and entry.exit_reason == "horizon"
    expected = (104 - 100) * 100 - 10.0 - 10.4
    assert entry.pnl == pytest.approx(expected)
    assert col.portfolio.realized == pytest.approx(expected)
    for name in ("a", "b", "c"):
        rec = col.records[name]
        assert (rec.wins, rec.losses) == (1, 0)
        # winrate 1.5 each and 0.5 for d, normalised to a mean of 1 (sum 4 = agents)
        assert rec.weight == pytest.approx(1.2) and col.engine.weight(name) == rec.weight
        assert rec.pnl == pytest.approx(expected / 3)
    assert (col.records["d"].wins, col.records["d"].losses) == (0, 1)
    assert col.records["d"].weight == pytest.approx(0.4)
    assert sum(r.weight for r in col.records.values()) == pytest.approx(len(AGENTS))


def test_no_second_trade_while_held_in_that_direction():
    col = make()
    col.on_bar(bar(T0, 100.0))
    for a in ("a", "b", "c"):
        col.on_proposal(vote(a), T0)
    assert len(col.ledger) == 1
    statuses = [col.on_proposal(vote(a, t=T0 + 1), T0 + 1)[0] for a in ("a", "b", "c")]
    assert statuses[-1] == cs.SUPPRESSED
    assert len(col.ledger) == 1 and len(col.portfolio.positions) == 1


def test_opposite_consensus_flattens_the_held_position_and_opens_nothing():
    col = make()
    col.on_bar(bar(T0, 100.0))
    for a in ("a", "b", "c"):
        col.on_proposal(vote(a), T0)
    col.on_bar(bar(T0 + 5, 99.0))
    for a in ("a", "b", "c"):
        status, decision = col.on_proposal(vote(a, Direction.SHORT, t=T0 + 5), T0 + 5)
    assert status == cs.DECIDED and decision is not None
    assert col.ledger[decision.id].status == FLATTENED
    assert col.portfolio.positions == {}
    first = next(e for e in col.ledger.values() if e.status == CLOSED)
    assert first.exit_reason == "reversed" and first.pnl < 0


def test_risk_refusal_is_recorded_as_skipped():
    col = make(max_open_positions=1)
    col.on_bar(bar(T0, 100.0))
    col.on_bar(bar(T0, 50.0, "MSFT"))
    for a in ("a", "b", "c"):
        col.on_proposal(vote(a), T0)
    for a in ("a", "b", "c"):
        _, decision = col.on_proposal(vote(a, asset="MSFT"), T0)
    assert decision is not None
    entry = col.ledger[decision.id]
    assert entry.status == SKIPPED and "max_open_positions" in entry.reason
    assert "MSFT" not in col.portfolio.positions


def test_no_price_no_trade():
    col = make()
    for a in ("a", "b", "c"):
        _, decision = col.on_proposal(vote(a, asset="NOPRICE"), T0)
    assert decision is not None and col.ledger[decision.id].status == SKIPPED


def test_replayed_decision_is_never_executed_twice():
    col = make()
    col.on_bar(bar(T0, 100.0))
    for a in ("a", "b", "c"):
        _, decision = col.on_proposal(vote(a), T0)
    assert decision is not None
    cash = col.portfolio.cash
    col._execute(decision, T0 + 1)  # as after a crash between the order and the ack
    assert col.portfolio.cash == cash and len(col.ledger) == 1


def test_size_is_capped_by_max_position_fraction():
    col = make(max_position_fraction=0.05)
    col.on_bar(bar(T0, 100.0))
    for a in ("a", "b", "c"):
        _, decision = col.on_proposal(vote(a, size=0.5), T0)
    assert decision is not None and decision.size == pytest.approx(0.5)
    assert col.ledger[decision.id].filled_qty == pytest.approx(50.0)


class PartialExitBroker(PaperBroker):
    """Fills opening orders; fills 40% of the first closing order, then cancels it."""

    def submit(self, order):  # type: ignore[no-untyped-def]
        from rawe_cli.models import OrderStatus, OrderUpdate

        if order.purpose == "close" and order.client_order_id.endswith("-x"):
            known = self._orders.get(order.client_order_id)
            if known is not None:
                return known
            price = self.prices[order.asset]
            update = OrderUpdate(order.client_order_id, OrderStatus.CANCELED,
                                 filled_qty=order.qty * 0.4, avg_price=price, fee=0.0)
            self._orders[order.client_order_id] = update
            return update
        return super().submit(order)


def test_a_second_exit_attempt_has_its_own_id_and_counts_no_fill_twice():
    s = Settings(fee_bps=0, slippage_bps=0, threshold=3.0, window=10.0)
    recs = {n: AgentRecord(n, n) for n in AGENTS}
    broker = PartialExitBroker(fee_bps=0, slippage_bps=0)
    col = Collective(s, recs, WinRateScheme(), broker)
    col.on_bar(bar(T0, 100.0))
    for a in ("a", "b", "c"):
        col.on_proposal(vote(a, horizon=10.0), T0)
    pos = col.portfolio.positions["AAPL"]
    assert pos.qty == pytest.approx(100.0)
    col.on_bar(bar(T0 + 10, 101.0))  # horizon: first exit sells 40 of 100, then is canceled
    assert col.portfolio.positions["AAPL"].qty == pytest.approx(60.0)
    col.on_bar(bar(T0 + 15, 102.0))  # second attempt: a new id, the remaining 60
    assert "AAPL" not in col.portfolio.positions
    assert set(broker._orders) >= {f"{pos.decision_id}-x", f"{pos.decision_id}-x2"}
    closed = col.closed[-1]
    assert closed.qty == pytest.approx(100.0)
    assert closed.pnl == pytest.approx(40 * 1.0 + 60 * 2.0)
    assert col.records["a"].wins == 1 and col.records["a"].losses == 0  # settled once


class ClosedMarketBroker(PaperBroker):
    def __init__(self) -> None:
        super().__init__(fee_bps=0, slippage_bps=0)
        self.closed = False

    def can_trade(self, symbol: str, timestamp: float) -> str:
        return "market closed" if self.closed else super().can_trade(symbol, timestamp)


def test_opposite_decision_that_cannot_trade_is_skipped_not_flattened():
    recs = {n: AgentRecord(n, n) for n in AGENTS}
    broker = ClosedMarketBroker()
    col = Collective(Settings(threshold=3.0, window=10.0), recs, WinRateScheme(), broker)
    col.on_bar(bar(T0, 100.0))
    for a in ("a", "b", "c"):
        col.on_proposal(vote(a), T0)
    broker.closed = True
    for a in ("a", "b", "c"):
        _, decision = col.on_proposal(vote(a, Direction.SHORT, t=T0 + 1), T0 + 1)
    assert decision is not None
    entry = col.ledger[decision.id]
    assert entry.status == SKIPPED and "market closed" in entry.reason
    assert col.portfolio.positions["AAPL"].direction is Direction.LONG
