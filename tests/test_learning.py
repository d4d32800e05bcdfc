"""Hedge and regime update rules, counterfactual scoring, and their hooks in the collective."""

from __future__ import annotations

import math

import pytest

from rawe_cli.app.runtime import make_learner, make_scheme
from rawe_cli.brokers.paper import PaperBroker
from rawe_cli.collective import Collective
from rawe_cli.config import Settings
from rawe_cli.core import learning
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.models import Bar, Direction, Proposal


def prop(agent: str, asset: str = "A", direction: Direction = Direction.LONG,
         ts: float = 0.0, pid: str | None = None, horizon: float = 100.0) -> Proposal:
    return Proposal(id=pid or f"p-{agent}-{asset}-{ts}", agent=agent, asset=asset,
                    direction=direction, size=0.05, expected_profit=0.01, risk_score=0.2,
                    narrative_id="n", signal_type="narrative_leads", timestamp=ts,
                    horizon=horizon, stop_loss=0.02, take_profit=0.04)


def test_hedge_step_is_multiplicative_and_bounded() -> None:
    h = learning.HedgeScheme(learning_rate=0.5, min_weight=0.1, max_weight=3.0,
                             reward_scale=0.1)
    assert h.step(1.0, 0.02) == pytest.approx(math.exp(0.5 * 0.2))
    assert h.step(1.0, -0.02) == pytest.approx(math.exp(-0.5 * 0.2))
    assert h.step(1.0, 5.0) == pytest.approx(math.exp(0.5))  # gain clipped to +1
    assert h.step(2.9, 0.1) == 3.0  # upper bound
    assert h.step(0.11, -0.1) == 0.1  # lower bound
    rec = AgentRecord("a", "a")
    for _ in range(3):
        h.learn(rec, 0.01, None)
    assert rec.score == pytest.approx(math.exp(3 * 0.5 * 0.1))
    assert h.weight(rec, "volatile") == rec.score  # hedge ignores the regime


def test_regime_scheme_keeps_scores_per_regime() -> None:
    r = learning.RegimeScheme(learning_rate=0.5, min_weight=0.1, max_weight=3.0,
                              reward_scale=0.1)
    rec = AgentRecord("a", "a")
    r.learn(rec, 0.05, "calm")
    r.learn(rec, -0.05, "volatile")
    r.learn(rec, -0.05, "volatile")
    assert rec.regime_scores["calm"] == pytest.approx(math.exp(0.25))
    assert rec.regime_scores["volatile"] == pytest.approx(math.exp(-0.5))
    assert r.weight(rec, "calm") > 1.0 > r.weight(rec, "volatile")
    assert r.weight(rec, "never-seen") == 1.0
    assert r.weight(rec, None) == pytest.approx(math.exp(-0.25))  # global score


def test_make_learned_scheme_uses_settings() -> None:
    s = Settings(scheme="hedge", learning_rate=0.2, min_weight=0.5, max_weight=2.0)
    scheme = make_scheme(s)
    assert isinstance(scheme, learning.HedgeScheme)
    assert (scheme.learning_rate, scheme.min_weight, scheme.max_weight) == (0.2, 0.5, 2.0)
    assert isinstance(make_scheme(Settings(scheme="regime")), learning.RegimeScheme)
    scorer = make_learner(Settings(scheme="hedge", fee_bps=1, slippage_bps=2))
    assert scorer.cost == pytest.approx(0.0006)
    assert make_learner(Settings(scheme="majority")) is None


def test_scorer_resolves_at_stop_take_or_horizon_net_of_cost() -> None:
    sc = learning.ProposalScorer(cost=0.001)
    sc.track(prop("long", ts=0.0), 100.0, "calm")
    sc.track(prop("short", direction=Direction.SHORT, ts=0.0), 100.0, "calm")
    sc.track(prop("slow", asset="C", ts=0.0, horizon=1000.0), 100.0, None)
    assert sc.due(10.0, "B", 50.0) == []  # a symbol without tracked proposals: nothing
    assert sc.due(10.0, "A", 101.0) == []  # +1% long, -1% short: neither stop nor take
    out = sc.due(20.0, "A", 104.5)  # long takes profit, short is stopped out
    # rewards come back in units of the noise over the horizon (1% a bar until bars are
    # seen, 5 s bars): the money figures are in the tallies
    noise = 0.01 * math.sqrt(100.0 / 5.0)
    assert [(a, round(r * noise, 6), g) for a, r, g in out] == [
        ("long", round(0.045 - 0.001, 6), "calm"), ("short", round(-0.045 - 0.001, 6), "calm")]
    assert sc.tallies["long"].reward == pytest.approx(0.044)
    assert sc.pending() == 1
    assert sc.due(500.0, "C", 100.5) == []  # "slow" horizon not reached
    assert sc.due(1000.0, "A", 100.5) == []  # its horizon is due, but no bar of C yet
    (name, reward, regime), = sc.due(1000.0, "C", 100.5)
    assert name == "slow" and regime is None
    assert reward * 0.01 * math.sqrt(1000.0 / 5.0) == pytest.approx(0.005 - 0.001)
    assert sc.tallies["long"].scored == 1 and sc.tallies["long"].wins == 1
    assert sc.tallies["short"].wins == 0


def _collective(scheme: str, threshold: float) -> Collective:
    s = Settings(scheme=scheme, threshold=threshold, fee_bps=0, slippage_bps=0)
    recs = {n: AgentRecord(n, n) for n in ("good", "bad")}
    return Collective(s, recs, make_scheme(s), PaperBroker(fee_bps=0, slippage_bps=0),
                      learner=make_learner(s))


def test_an_agent_that_never_reaches_consensus_still_earns_weight() -> None:
    col = _collective("hedge", threshold=100.0)  # no decision can ever be made
    price = 100.0
    col.on_bar(Bar(0.0, "A", price, price, price, price))
    t = 0.0
    for i in range(20):
        t = i * 10.0
        col.on_proposal(prop("good", ts=t, pid=f"g{i}"), t)
        col.on_proposal(prop("bad", direction=Direction.SHORT, ts=t, pid=f"b{i}"), t)
        price *= 1.01
        col.on_bar(Bar(t + 5, "A", price, price, price, price))
    for j in range(12):  # let every horizon pass
        col.on_bar(Bar(t + 100 + j * 50, "A", price, price, price, price))
    assert not col.ledger  # nothing was ever executed
    assert col.records["good"].weight > 1.5 > 1.0 > 0.7 > col.records["bad"].weight
    assert col.engine.weight("good") == col.records["good"].weight  # the engine votes with it


def test_regime_scheme_reweighs_on_set_regime() -> None:
    col = _collective("regime", threshold=100.0)
    col.records["good"].regime_scores.update({"calm": 2.5, "volatile": 0.2})
    col.set_regime("calm")  # weights are normalised to a mean of 1: 2.5 : 1.0
    assert col.engine.weight("good") == pytest.approx(2 * 2.5 / 3.5)
    assert col.engine.weight("good") / col.engine.weight("bad") == pytest.approx(2.5)
    col.set_regime("volatile")
    assert col.engine.weight("good") == pytest.approx(2 * 0.2 / 1.2)
    assert col.records["good"].weight == col.engine.weight("good")
    assert col.engine.weight("bad") == pytest.approx(2 * 1.0 / 1.2)


def test_rewards_go_to_the_regime_the_vote_was_cast_in() -> None:
    col = _collective("regime", threshold=100.0)
    col.set_regime("calm")
    col.on_bar(Bar(0.0, "A", 100, 100, 100, 100))
    col.on_proposal(prop("good", ts=0.0), 0.0)
    col.set_regime("volatile")  # the regime changes before the outcome is known
    col.on_bar(Bar(10.0, "A", 105, 105, 105, 105))  # take-profit
    scores = col.records["good"].regime_scores
    assert scores["calm"] > 1.0 and "volatile" not in scores
