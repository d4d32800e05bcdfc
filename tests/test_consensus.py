"""The consensus rules of rawe_cli.core.consensus, one by one, then a randomized comparison of
the incremental engine with a from-scratch reference model."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import pytest

from rawe_cli.core import consensus as cs
from rawe_cli.core.consensus import (
    ACCEPTED,
    DECIDED,
    DUPLICATE,
    EXPIRED,
    SUPPRESSED,
    UNKNOWN_AGENT,
    ConsensusEngine,
    decision_id,
)
from rawe_cli.models import Decision, Direction, Proposal

L, S = Direction.LONG, Direction.SHORT
T0 = 1_767_225_600.0

_ids = itertools.count()


def prop(agent: str, direction: Direction = L, ts: float = T0, *, asset: str = "AAPL",
         pid: str | None = None, size: float = 0.1, horizon: float = 300.0,
         stop_loss: float = 0.02, take_profit: float = 0.04) -> Proposal:
    return Proposal(
        id=pid if pid is not None else f"p{next(_ids)}", agent=agent, asset=asset,
        direction=direction, size=size, expected_profit=0.01, risk_score=0.3,
        narrative_id="n1", signal_type="narrative_leads", timestamp=ts, horizon=horizon,
        stop_loss=stop_loss, take_profit=take_profit)


def engine(n: int = 6, weight: float = 1.0, **kw: float) -> ConsensusEngine:
    eng = ConsensusEngine(**kw)
    for i in range(n):
        eng.register(f"a{i}", weight)
    return eng


def vote(eng: ConsensusEngine, agent: str, direction: Direction = L, now: float = T0,
         **kw) -> tuple[str, Decision | None]:
    return eng.submit(prop(agent, direction, kw.pop("ts", now), **kw), now)


# -- thresholds ---------------------------------------------------------------------------


def test_absolute_threshold_three_unit_votes_decide_two_do_not() -> None:
    eng = engine()
    assert vote(eng, "a0") == (ACCEPTED, None)
    assert vote(eng, "a1") == (ACCEPTED, None)
    t = eng.tally("AAPL", T0)
    assert (t.long_weight, t.long_votes, t.short_votes) == (2.0, 2, 0)
    status, d = vote(eng, "a2")
    assert status == DECIDED
    assert d is not None
    assert d.direction is L and d.asset == "AAPL"
    assert d.agents == ("a0", "a1", "a2")
    assert d.long_weight == pytest.approx(3.0) and d.threshold == 3.0
    assert eng.stats[DECIDED] == 1 and eng.stats[ACCEPTED] == 3


def test_default_threshold_is_three() -> None:
    eng = ConsensusEngine()
    assert eng.threshold == 3.0 and eng.effective_threshold == 3.0 and eng.window == 10.0


def test_relative_threshold_scales_with_registered_agents() -> None:
    small = engine(4, threshold_share=0.5)  # 0.5 * 4 = 2
    assert small.effective_threshold == pytest.approx(2.0)
    assert vote(small, "a0")[0] == ACCEPTED
    assert vote(small, "a1")[0] == DECIDED

    big = engine(10, threshold_share=0.5)  # 0.5 * 10 = 5
    assert big.effective_threshold == pytest.approx(5.0)
    for i in range(4):
        assert vote(big, f"a{i}")[0] == ACCEPTED
    status, d = vote(big, "a4")
    assert status == DECIDED and d is not None and d.threshold == pytest.approx(5.0)
    big.register("a10")
    assert big.effective_threshold == pytest.approx(5.5)


def test_relative_threshold_moves_when_weights_change() -> None:
    eng = engine(4, threshold_share=0.5)  # total 4 -> threshold 2
    eng.set_weight("a0", 3.0)  # total 6 -> threshold 3
    assert eng.effective_threshold == pytest.approx(3.0)
    assert vote(eng, "a1")[0] == ACCEPTED
    assert vote(eng, "a2")[0] == ACCEPTED  # 2.0 < 3.0
    status, d = vote(eng, "a0")  # 2.0 + 3.0
    assert status == DECIDED and d is not None and d.long_weight == pytest.approx(5.0)


def test_register_twice_updates_the_weight_instead_of_adding() -> None:
    eng = engine(2, threshold_share=1.0)
    eng.register("a0", 2.0)
    assert eng.weight("a0") == 2.0
    assert eng.agents == {"a0": 2.0, "a1": 1.0}
    assert eng.effective_threshold == pytest.approx(3.0)


# -- the window ---------------------------------------------------------------------------


def test_vote_counts_until_window_seconds_of_event_time() -> None:
    eng = engine(window=10.0)
    vote(eng, "a0", now=T0)
    vote(eng, "a1", now=T0 + 5)
    status, _ = vote(eng, "a2", now=T0 + 9.999)
    assert status == DECIDED


def test_vote_older_than_window_no_longer_counts() -> None:
    eng = engine(window=10.0)
    vote(eng, "a0", now=T0)
    vote(eng, "a1", now=T0 + 5)
    status, d = vote(eng, "a2", now=T0 + 10.0)  # a0's vote expired exactly now
    assert (status, d) == (ACCEPTED, None)
    t = eng.tally("AAPL", T0 + 10.0)
    assert (t.long_votes, t.long_weight) == (2, pytest.approx(2.0))
    assert eng.tally("AAPL", T0 + 15.0).long_votes == 1  # a1 gone too
    assert eng.tally("AAPL", T0 + 20.0).long_votes == 0


def test_expired_on_arrival_is_reported_expired_and_not_counted() -> None:
    eng = engine(window=10.0)
    assert vote(eng, "a0", ts=T0, now=T0 + 10.0) == (EXPIRED, None)
    assert eng.stats[EXPIRED] == 1 and eng.stats[ACCEPTED] == 0
    assert eng.tally("AAPL", T0 + 10.0).long_votes == 0
    assert vote(eng, "a0", ts=T0, now=T0 + 9.5)[0] == ACCEPTED  # late but still inside


def test_expiry_of_a_replaced_vote_does_not_remove_the_newer_one() -> None:
    eng = engine(window=10.0)
    vote(eng, "a0", now=T0)
    vote(eng, "a0", now=T0 + 5)  # replaces; the first one's expiry entry is stale
    t = eng.tally("AAPL", T0 + 12)
    assert (t.long_votes, t.long_weight) == (1, pytest.approx(1.0))
    assert eng.tally("AAPL", T0 + 15).long_votes == 0


def test_out_of_order_timestamps_expire_by_their_own_time() -> None:
    eng = engine(window=10.0)
    vote(eng, "a0", ts=T0 + 4, now=T0 + 4)
    vote(eng, "a1", ts=T0 + 1, now=T0 + 4.5)  # arrives later, created earlier
    assert eng.tally("AAPL", T0 + 11.5).long_votes == 1  # a1 (expires T0+11) is gone
    assert eng.tally("AAPL", T0 + 13.9).long_votes == 1
    assert eng.tally("AAPL", T0 + 14).long_votes == 0


# -- ties ---------------------------------------------------------------------------------


def test_equal_sums_reaching_the_threshold_make_no_trade_and_votes_stay() -> None:
    eng = engine(4)
    vote(eng, "a0", L)
    vote(eng, "a1", S)
    eng.set_weight("a0", 3.0)
    eng.set_weight("a1", 3.0)
    status, d = vote(eng, "a0", L)  # a0 re-proposes: 3 vs 3, both at the threshold
    assert (status, d) == (ACCEPTED, None)
    assert eng.stats["ties"] == 1 and eng.stats[DECIDED] == 0
    t = eng.tally("AAPL", T0)
    assert (t.long_votes, t.short_votes) == (1, 1)
    assert t.long_weight == pytest.approx(3.0) and t.short_weight == pytest.approx(3.0)
    status, d = vote(eng, "a2", S)  # breaks the tie
    assert status == DECIDED and d is not None and d.direction is S
    assert d.agents == ("a1", "a2") and d.opponents == ("a0",)


def test_tie_under_a_lowered_relative_threshold() -> None:
    eng = engine(4, threshold_share=0.2)
    eng.register("z", 10.0)  # total 14 -> threshold 2.8
    for agent, side in (("a0", L), ("a1", L), ("a2", S), ("a3", S)):
        assert vote(eng, agent, side)[0] == ACCEPTED
    eng.set_weight("z", 1.0)  # total 5 -> threshold 1.0; 2 vs 2 is a tie
    assert vote(eng, "a1", L)[0] == ACCEPTED
    assert eng.stats["ties"] == 1
    assert vote(eng, "z", L)[0] == DECIDED


# -- weights ------------------------------------------------------------------------------


def test_winrate_style_weights_change_the_sums() -> None:
    eng = ConsensusEngine()
    for name, w in (("hot", 1.5), ("warm", 1.5), ("cold", 0.5), ("cool", 0.5), ("mid", 1.0)):
        eng.register(name, w)
    assert vote(eng, "hot")[0] == ACCEPTED
    status, d = vote(eng, "warm")  # 1.5 + 1.5 = 3.0: two good agents suffice
    assert status == DECIDED and d is not None and d.weights == (1.5, 1.5)

    vote(eng, "cold", asset="MSFT")
    vote(eng, "cool", asset="MSFT")
    assert vote(eng, "mid", asset="MSFT")[0] == ACCEPTED  # 0.5 + 0.5 + 1.0 = 2.0
    assert eng.tally("MSFT", T0).long_weight == pytest.approx(2.0)


def test_set_weight_reweighs_live_votes_at_once() -> None:
    eng = engine(4)
    vote(eng, "a0")
    vote(eng, "a1")
    vote(eng, "a0", S, asset="MSFT")
    eng.set_weight("a0", 1.5)
    assert eng.tally("AAPL", T0).long_weight == pytest.approx(2.5)
    assert eng.tally("MSFT", T0).short_weight == pytest.approx(1.5)
    eng.set_weight("a2", 0.5)
    status, d = vote(eng, "a2")
    assert status == DECIDED and d is not None
    assert d.agents == ("a0", "a1", "a2") and d.weights == (1.5, 1.0, 0.5)
    assert d.long_weight == pytest.approx(3.0)


def test_set_weight_reaches_votes_on_many_assets() -> None:
    eng = engine(6)
    symbols = [f"S{i:03d}" for i in range(300)]
    consumed = set(symbols[:150:7])
    for k, sym in enumerate(symbols):
        vote(eng, "a0", L if k % 2 else S, asset=sym)
        if k % 3 == 0:
            vote(eng, "a1", L, asset=sym)
    for sym in consumed:  # a decision consumes a0's (and a1's) vote there
        statuses = []
        for a in ("a3", "a4", "a5"):
            statuses.append(vote(eng, a, S, asset=sym)[0])
            if statuses[-1] == DECIDED:
                break
        assert statuses[-1] == DECIDED
    eng.set_weight("a0", 2.0)
    for k, sym in enumerate(symbols):
        t = eng.tally(sym, T0)
        if sym in consumed:
            assert (t.long_weight, t.short_weight, t.long_votes, t.short_votes) == (0, 0, 0, 0)
            continue
        a1 = 1.0 if k % 3 == 0 else 0.0
        if k % 2:
            assert (t.long_weight, t.short_weight) == (pytest.approx(2.0 + a1), a1 * 0), sym
        else:
            assert (t.long_weight, t.short_weight) == (pytest.approx(a1), 2.0), sym
    eng.set_weight("a0", 0.5)
    assert eng.tally("S299", T0).long_weight == pytest.approx(0.5)
    assert eng.tally("S298", T0).short_weight == pytest.approx(0.5)


# -- one vote per agent, redelivery -------------------------------------------------------


def test_one_live_vote_per_agent_per_asset() -> None:
    eng = engine()
    vote(eng, "a0")
    vote(eng, "a0")
    vote(eng, "a1")
    assert vote(eng, "a0")[0] == ACCEPTED  # still two voters, not four votes
    t = eng.tally("AAPL", T0)
    assert (t.long_votes, t.long_weight) == (2, pytest.approx(2.0))
    assert eng.tally("MSFT", T0).long_votes == 0


def test_newer_proposal_flips_the_agents_direction() -> None:
    eng = engine()
    vote(eng, "a0", L)
    vote(eng, "a1", L)
    vote(eng, "a0", S)
    t = eng.tally("AAPL", T0)
    assert (t.long_votes, t.short_votes) == (1, 1)
    assert (t.long_weight, t.short_weight) == (pytest.approx(1.0), pytest.approx(1.0))
    assert vote(eng, "a2", L)[0] == ACCEPTED  # only 2 long now
    status, d = vote(eng, "a3", L)
    assert status == DECIDED and d is not None and d.opponents == ("a0",)


def test_same_proposal_id_never_counts_twice() -> None:
    eng = engine()
    p = prop("a0", pid="same")
    assert eng.submit(p, T0)[0] == ACCEPTED
    assert eng.submit(p, T0 + 1) == (DUPLICATE, None)
    assert eng.submit(prop("a1", S, pid="same"), T0 + 1) == (DUPLICATE, None)  # id is the key
    t = eng.tally("AAPL", T0 + 1)
    assert (t.long_votes, t.short_votes) == (1, 0)
    assert eng.stats[DUPLICATE] == 2 and eng.stats[ACCEPTED] == 1


def test_redelivery_after_a_decision_does_not_vote_again() -> None:
    eng = engine()
    ps = [prop(f"a{i}") for i in range(3)]
    assert [eng.submit(p, T0)[0] for p in ps] == [ACCEPTED, ACCEPTED, DECIDED]
    assert [eng.submit(p, T0 + 1)[0] for p in ps] == [DUPLICATE] * 3
    assert eng.tally("AAPL", T0 + 1).long_votes == 0


# -- decisions ----------------------------------------------------------------------------


def test_decision_consumes_every_vote_on_its_asset_both_sides() -> None:
    eng = engine()
    opp = prop("a3", S)
    eng.submit(opp, T0)
    vote(eng, "a0", asset="MSFT")
    wins = [prop(f"a{i}") for i in range(3)]
    results = [eng.submit(p, T0) for p in wins]
    status, d = results[-1]
    assert status == DECIDED and d is not None
    assert d.opponents == ("a3",) and d.opponent_proposal_ids == (opp.id,)
    assert d.proposal_ids == tuple(p.id for p in wins)
    assert d.short_weight == pytest.approx(1.0)
    t = eng.tally("AAPL", T0)
    assert (t.long_votes, t.short_votes, t.long_weight, t.short_weight) == (0, 0, 0.0, 0.0)
    assert eng.tally("MSFT", T0).long_votes == 1  # other assets untouched
    assert vote(eng, "a0")[0] == ACCEPTED and vote(eng, "a1")[0] == ACCEPTED  # fresh count
    assert vote(eng, "a4", S)[0] == ACCEPTED
    assert eng.tally("AAPL", T0).short_votes == 1  # a3's old vote did not come back


def test_no_duplicate_trade_while_held_in_that_direction() -> None:
    eng = engine()
    eng.set_holding("AAPL", L)
    vote(eng, "a0")
    vote(eng, "a1")
    status, d = vote(eng, "a2")
    assert status == SUPPRESSED and d is not None and d.direction is L
    assert eng.stats[SUPPRESSED] == 1 and eng.stats[DECIDED] == 0
    assert eng.tally("AAPL", T0).long_votes == 0  # consumed
    for i in range(3):
        status, d = vote(eng, f"a{i}", S)
    assert status == DECIDED and d is not None and d.direction is S  # opposite: decided
    eng.set_holding("AAPL", None)
    for i in range(3):
        status, _ = vote(eng, f"a{i}", L)
    assert status == DECIDED


def test_size_horizon_stop_take_are_the_weighted_means_of_the_winning_side() -> None:
    eng = ConsensusEngine()
    specs = {"a0": (0.5, 0.10, 100.0, 0.01, 0.02), "a1": (1.0, 0.20, 200.0, 0.02, 0.05),
             "a2": (1.5, 0.40, 600.0, 0.03, 0.07)}
    for name, (w, *_rest) in specs.items():
        eng.register(name, w)
    eng.register("x", 1.0)
    eng.submit(prop("x", S, size=0.9, horizon=9999.0, stop_loss=0.5, take_profit=0.5), T0)
    d = None
    for name, (_w, size, hz, sl, tp) in specs.items():
        _, d = eng.submit(prop(name, size=size, horizon=hz, stop_loss=sl, take_profit=tp), T0)
    assert d is not None
    total = sum(s[0] for s in specs.values())
    for attr, k in (("size", 1), ("horizon", 2), ("stop_loss", 3), ("take_profit", 4)):
        expected = sum(s[0] * s[k] for s in specs.values()) / total
        assert getattr(d, attr) == pytest.approx(expected), attr
    assert d.size != pytest.approx(sum(s[1] for s in specs.values()) / 3)  # not unweighted


def test_decision_ids_are_deterministic_and_depend_on_the_proposals() -> None:
    ps = [prop(f"a{i}", pid=f"q{i}") for i in range(3)]
    ids = set()
    for order in itertools.permutations(ps):
        eng = engine()
        d = [eng.submit(p, T0)[1] for p in order][-1]
        assert d is not None
        ids.add(d.id)
    assert len(ids) == 1
    (the_id,) = ids
    assert the_id == decision_id("AAPL", L, ("q2", "q0", "q1"))

    eng = engine()
    d = [eng.submit(prop(f"a{i}", pid=f"r{i}"), T0)[1] for i in range(3)][-1]
    assert d is not None and d.id != the_id
    assert decision_id("AAPL", S, ("q0", "q1", "q2")) != the_id
    assert decision_id("MSFT", L, ("q0", "q1", "q2")) != the_id
    assert decision_id("AAPL", L, ("q0", "q1")) != the_id


def test_unknown_agent_is_rejected() -> None:
    eng = engine(2)
    assert vote(eng, "stranger") == (UNKNOWN_AGENT, None)
    assert eng.stats[UNKNOWN_AGENT] == 1 and eng.stats[ACCEPTED] == 0
    assert eng.tally("AAPL", T0).long_votes == 0
    p = prop("stranger", pid="later")
    eng.submit(p, T0)
    eng.register("stranger")
    assert eng.submit(p, T0)[0] == ACCEPTED  # rejection did not mark the id as seen


@pytest.mark.parametrize("kwargs", [
    {"threshold": 0.0}, {"threshold": -1.0}, {"threshold_share": 0.0},
    {"threshold_share": 1.5}, {"threshold_share": -0.1}, {"window": 0.0}, {"window": -5.0},
])
def test_constructor_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ConsensusEngine(**kwargs)


def test_weights_must_be_positive_and_agents_known() -> None:
    eng = engine(1)
    with pytest.raises(ValueError):
        eng.register("b", 0.0)
    with pytest.raises(ValueError):
        eng.set_weight("a0", -1.0)
    with pytest.raises(KeyError):
        eng.set_weight("nobody", 1.0)
    assert eng.agents == {"a0": 1.0}
    assert ConsensusEngine(threshold_share=1.0).effective_threshold == 0.0


def test_stats_keys_and_module_constants() -> None:
    eng = engine()
    assert set(eng.stats) == {ACCEPTED, DECIDED, SUPPRESSED, DUPLICATE, EXPIRED,
                              UNKNOWN_AGENT, "ties"}
    assert (cs.ACCEPTED, cs.DECIDED, cs.SUPPRESSED, cs.DUPLICATE, cs.EXPIRED,
            cs.UNKNOWN_AGENT) == ("accepted", "decided", "suppressed", "duplicate", "expired",
                                  "unknown_agent")
    assert all(v == 0 for v in eng.stats.values())


# -- randomized: the incremental engine against a from-scratch reference -------------------


@dataclass
class _Reference:
    """The rules, recomputed from scratch at every step: no running sums, no expiry queue."""

    threshold: float | None
    share: float | None
    window: float
    weights: dict[str, float] = field(default_factory=dict)
    votes: dict[str, dict[str, Proposal]] = field(default_factory=dict)  # asset -> agent ->
    seen: set[str] = field(default_factory=set)
    holdings: dict[str, Direction] = field(default_factory=dict)

    def live(self, asset: str, now: float) -> list[Proposal]:
        return [p for p in self.votes.get(asset, {}).values() if p.timestamp + self.window > now]

    def sums(self, asset: str, now: float) -> tuple[float, float, int, int]:
        live = self.live(asset, now)
        lw = sum(self.weights[p.agent] for p in live if p.direction is L)
        sw = sum(self.weights[p.agent] for p in live if p.direction is S)
        return lw, sw, sum(p.direction is L for p in live), sum(p.direction is S for p in live)

    def threshold_now(self) -> float:
        if self.share is not None:
            return self.share * sum(self.weights.values())
        assert self.threshold is not None
        return self.threshold

    def submit(self, p: Proposal, now: float) -> tuple[str, dict | None]:
        if p.id in self.seen:
            return DUPLICATE, None
        if p.agent not in self.weights:
            return UNKNOWN_AGENT, None
        if p.timestamp + self.window <= now:
            return EXPIRED, None
        self.seen.add(p.id)
        self.votes.setdefault(p.asset, {})[p.agent] = p
        lw, sw, _, _ = self.sums(p.asset, now)
        if max(lw, sw) + 1e-9 < self.threshold_now() or abs(lw - sw) <= 1e-9:
            return ACCEPTED, None
        side = L if lw > sw else S
        live = self.live(p.asset, now)
        win = sorted((q for q in live if q.direction is side), key=lambda q: q.agent)
        lose = sorted((q for q in live if q.direction is not side), key=lambda q: q.agent)
        tw = sum(self.weights[q.agent] for q in win)
        expect = {
            "id": decision_id(p.asset, side, tuple(q.id for q in win)),
            "direction": side, "agents": tuple(q.agent for q in win),
            "opponents": tuple(q.agent for q in lose),
            "opponent_proposal_ids": tuple(q.id for q in lose),
            "weights": tuple(self.weights[q.agent] for q in win),
            "long_weight": lw, "short_weight": sw, "threshold": self.threshold_now(),
            "size": sum(self.weights[q.agent] * q.size for q in win) / tw,
            "horizon": sum(self.weights[q.agent] * q.horizon for q in win) / tw,
        }
        self.votes[p.asset] = {}  # consumed: both sides, and expired leftovers too
        return (SUPPRESSED if self.holdings.get(p.asset) is side else DECIDED), expect


@pytest.mark.parametrize("seed,share,n_assets", [
    (1, None, 3), (2, None, 3), (3, 0.4, 3), (4, None, 3), (5, None, 40), (6, 0.3, 40)])
def test_random_streams_match_a_from_scratch_reference(seed: int, share: float | None,
                                                        n_assets: int) -> None:
    rng = random.Random(seed)
    threshold = rng.choice([2.0, 3.0, 3.5])
    eng = ConsensusEngine(threshold=threshold, threshold_share=share, window=10.0)
    ref = _Reference(None if share else threshold, share, 10.0)
    palette = [0.5, 0.7, 1.0, 1.3, 1.5]  # winrate-style; discrete so that ties happen
    agents = [f"g{i}" for i in range(8)]
    for a in agents[:7]:
        w = rng.choice(palette)
        eng.register(a, w)
        ref.weights[a] = w
    assets = [f"X{i:02d}" for i in range(n_assets)]
    sent: list[Proposal] = []
    now = T0
    counts = dict.fromkeys((ACCEPTED, DECIDED, SUPPRESSED, DUPLICATE, EXPIRED,
                            UNKNOWN_AGENT), 0)
    for step in range(4000):
        now += rng.expovariate(2.7 * n_assets)  # windows overlap on every asset
        r = rng.random()
        if r < 0.01:  # a regime change re-weighs everyone (equal weights make ties likely)
            w = rng.choice(palette)
            for a in list(ref.weights):
                eng.set_weight(a, w)
                ref.weights[a] = w
            continue
        if r < 0.06:
            a, w = rng.choice(agents[:7]), rng.choice(palette)
            eng.set_weight(a, w)
            ref.weights[a] = w
            continue
        if r < 0.10:
            asset, side = rng.choice(assets), rng.choice([L, S, None])
            eng.set_holding(asset, side)
            if side is None:
                ref.holdings.pop(asset, None)
            else:
                ref.holdings[asset] = side
            continue
        if r < 0.101 and step > 1000 and agents[7] not in ref.weights:
            eng.register(agents[7], 1.0)  # a late joiner; its earlier proposals were rejected
            ref.weights[agents[7]] = 1.0
        if r < 0.15 and sent:
            p = rng.choice(sent[-50:])  # redelivery
        else:
            age = rng.choice([0.0, 0.0, rng.uniform(0, 3), rng.uniform(8, 12)])
            p = prop(rng.choice(agents), rng.choice([L, S]), now - age,
                     asset=rng.choice(assets), pid=f"s{seed}-{step}",
                     size=rng.uniform(0.01, 0.2), horizon=rng.uniform(60, 600))
            sent.append(p)
        want_status, want = ref.submit(p, now)
        status, d = eng.submit(p, now)
        counts[status] += 1
        assert status == want_status, (step, p)
        if want is None:
            assert d is None, step
        else:
            assert d is not None, step
            for key, value in want.items():
                got = getattr(d, key)
                if isinstance(value, float):
                    assert got == pytest.approx(value, abs=1e-9), (step, key)
                elif isinstance(value, tuple) and value and isinstance(value[0], float):
                    assert got == pytest.approx(value), (step, key)
                else:
                    assert got == value, (step, key)
        if step % 7 == 0:
            asset = rng.choice(assets)
            t = eng.tally(asset, now)
            lw, sw, ln, sn = ref.sums(asset, now)
            assert (t.long_votes, t.short_votes) == (ln, sn), step
            assert t.long_weight == pytest.approx(lw, abs=1e-9), step
            assert t.short_weight == pytest.approx(sw, abs=1e-9), step
    counted = counts[ACCEPTED] + counts[DECIDED] + counts[SUPPRESSED]
    assert eng.stats[ACCEPTED] == counted  # "accepted" counts every vote taken
    for status in (DECIDED, SUPPRESSED, DUPLICATE, EXPIRED, UNKNOWN_AGENT):
        assert eng.stats[status] == counts[status], status
    # the stream really exercised every path
    assert all(n > 0 for n in counts.values()), counts
    assert eng.stats["ties"] > 0, eng.stats


def test_the_worked_example_of_docs_consensus_md() -> None:
    eng = ConsensusEngine(threshold=3.0, window=10.0)
    for name in "ABCDEF":
        eng.register(name)
    b = prop("B", L, T0 + 2)
    steps = [(prop("A", L, T0), ACCEPTED, (1, 0)), (b, ACCEPTED, (2, 0)),
             (b, DUPLICATE, (2, 0)), (prop("D", S, T0 + 3), ACCEPTED, (2, 1)),
             (prop("C", L, T0 + 11), ACCEPTED, (2, 1)), (prop("E", L, T0 + 11.5), DECIDED, (0, 0)),
             (prop("F", L, T0 + 13), ACCEPTED, (1, 0))]
    for p, want, (n_long, n_short) in steps:
        status, d = eng.submit(p, p.timestamp)
        assert status == want, p.agent
        t = eng.tally("AAPL", p.timestamp)
        assert (t.long_votes, t.short_votes) == (n_long, n_short), p.agent
        if status == DECIDED:
            assert d is not None and d.agents == ("B", "C", "E") and d.opponents == ("D",)
