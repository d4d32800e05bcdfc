from rawe_cli.core.weighting import (
    AgentRecord,
    MajorityScheme,
    WinRateScheme,
    apply_closed_trade,
)
from rawe_cli.models import ClosedTrade, Direction


def trade(pnl: float, agents=("a", "b"), weights=(1.0, 1.0), opponents=("c",)) -> ClosedTrade:
    return ClosedTrade(
        decision_id="d-1", asset="AAPL", direction=Direction.LONG, qty=10, entry_price=100,
        exit_price=101, fees=0.2, pnl=pnl, opened_at=0.0, closed_at=60.0, reason="horizon",
        agents=agents, opponents=opponents, weights=weights,
    )


def records(*names: str) -> dict[str, AgentRecord]:
    return {n: AgentRecord(n, n) for n in names}


def test_winrate_weight_is_half_plus_win_rate_and_one_without_history():
    s = WinRateScheme()
    r = AgentRecord("a", "a")
    assert s.weight(r, None) == 1.0
    r.wins, r.losses = 3, 1
    assert s.weight(r, None) == 1.25
    r.wins, r.losses = 0, 4
    assert s.weight(r, None) == 0.5
    r.wins, r.losses = 5, 0
    assert s.weight(r, None) == 1.5


def test_majority_is_always_one():
    r = AgentRecord("a", "a", wins=10)
    assert MajorityScheme().weight(r, None) == 1.0


def test_winning_trade_credits_voters_and_debits_opponents():
    recs = records("a", "b", "c", "d")
    changed = apply_closed_trade(recs, trade(30.0), WinRateScheme(), now=60.0)
    assert sorted(changed) == ["a", "b", "c"]
    assert (recs["a"].wins, recs["a"].losses) == (1, 0)
    assert (recs["c"].wins, recs["c"].losses) == (0, 1)
    assert recs["a"].weight == 1.5 and recs["c"].weight == 0.5
    assert recs["d"].weight == 1.0 and recs["d"].trades == 0
    assert recs["a"].pnl == 15.0 and recs["b"].pnl == 15.0
    assert recs["c"].pnl == 0.0  # opponents moved no money
    assert recs["a"].updated == 60.0


def test_losing_trade_is_a_loss_for_voters_and_a_win_for_opponents():
    recs = records("a", "b", "c")
    apply_closed_trade(recs, trade(-12.0), WinRateScheme(), now=1.0)
    assert (recs["a"].wins, recs["a"].losses) == (0, 1)
    assert (recs["c"].wins, recs["c"].losses) == (1, 0)
    assert recs["a"].pnl == -6.0


def test_pnl_is_shared_in_proportion_to_voting_weight():
    recs = records("a", "b")
    apply_closed_trade(recs, trade(30.0, weights=(1.5, 0.5), opponents=()), WinRateScheme(), 0)
    assert recs["a"].pnl == 22.5 and recs["b"].pnl == 7.5
    assert abs(sum(r.pnl for r in recs.values()) - 30.0) < 1e-12


def test_zero_pnl_counts_as_a_loss_and_unknown_agents_are_skipped():
    recs = records("a")
    changed = apply_closed_trade(recs, trade(0.0, agents=("a", "gone"), opponents=()),
                                 WinRateScheme(), 0)
    assert changed == ["a"]
    assert recs["a"].losses == 1


def test_record_round_trips_through_dict():
    r = AgentRecord("a", "p", weight=1.2, wins=2, losses=1, pnl=3.5, votes=4, updated=9.0,
                    score=1.1, regime_scores={"calm": 1.3})
    assert AgentRecord.from_dict(r.to_dict()) == r
