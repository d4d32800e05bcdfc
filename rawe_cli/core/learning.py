"""Learned weighting: counterfactual scoring of proposals, Hedge, and per-regime Hedge. Pure.

Counterfactual scoring (``ProposalScorer``)
    Every proposal the consensus engine accepts is tracked as if it had been traded alone:
    entered at the last price of its asset when it was proposed, closed at the close of the
    first later bar of that asset where its own stop-loss or take-profit is reached, or its
    holding horizon has passed (the portfolio's exit rules). Its reward is the signed return
    over that holding, net of a round-trip cost (fees and slippage both ways):

        reward = sign * (exit / entry - 1) - cost

    Executed or not, every proposal is scored the same way, so an agent that never reaches
    consensus (outvoted, or alone on its side) still earns, or loses, weight; and scoring
    goes on while the collective trades nothing, so weights can recover. This is real
    accounting on real prices; nothing is drawn at random. What the schemes learn from is
    the reward in units of the asset's noise over the proposal's horizon (per-bar
    volatility, an EWMA of the bars the scorer sees, times the square root of the horizon
    in bars): a 20 bps edge is as telling on 1-minute bars as 2% is on daily bars.

Hedge (``HedgeScheme``, ``--scheme hedge``)
    Multiplicative weights. Each scored reward (in noise units) is turned into a gain in
    [-1, 1] by dividing it by ``reward_scale`` (1: one unit of noise is a full unit) and
    clipping; then

        score <- clip(score * exp(learning_rate * gain), min_weight, max_weight)

    and the voting weight is the score. The bounds keep a weight from vanishing (an agent
    that stops working can be trusted again once it works) or from dominating for ever.

Regime (``RegimeScheme``, ``--scheme regime``)
    The same update, but the score is kept per market regime (``AgentRecord.regime_scores``)
    and the weight is the score of the regime the classifier (``core/regime.py``) sees now.
    A reward is credited to the regime in which the proposal was made. An agent's score in a
    regime it has not been scored in yet is 1.0; with no regime known yet (classifier
    warming up) the weight is the agent's global score, which learns from every reward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rawe_cli.config import Settings
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.models import Proposal

REWARD_SCALE = 1.0  # one unit of noise over the horizon is a full unit of gain (clipped)
_VOL_BARS = 100.0  # bars of the scorer's volatility EWMA


@dataclass(slots=True)
class _Tracked:
    agent: str
    sign: int
    entry: float
    expires: float
    stop_loss: float
    take_profit: float
    regime: str | None
    noise: float  # the asset's noise over the horizon at tracking time (a fraction)


@dataclass(slots=True)
class _Vol:
    last: float
    var: float = 0.0
    n: int = 0

    def update(self, price: float) -> None:
        if self.last > 0 and price > 0:
            r = math.log(price / self.last)
            self.n += 1
            rate = max(1.0 / self.n, 1.0 / _VOL_BARS)
            self.var += rate * (r * r - self.var)
        self.last = price


@dataclass(slots=True)
class AgentTally:
    """What the scorer saw of one agent: proposals scored and their summed net return."""

    scored: int = 0
    wins: int = 0
    reward: float = 0.0


@dataclass(slots=True)
class ProposalScorer:
    """Scores every tracked proposal by its counterfactual outcome (see module doc)."""

    cost: float = 0.0  # round-trip cost as a fraction of notional
    bar_seconds: float = 5.0
    _open: dict[str, list[_Tracked]] = field(default_factory=dict)  # asset -> tracked
    _vols: dict[str, _Vol] = field(default_factory=dict)
    tallies: dict[str, AgentTally] = field(default_factory=dict)

    def noise(self, asset: str, horizon: float) -> float:
        """The asset's noise over `horizon` seconds, a fraction (1% until bars are seen)."""
        v = self._vols.get(asset)
        bar_vol = math.sqrt(v.var) if v is not None and v.n >= 2 and v.var > 0 else 0.01
        return bar_vol * math.sqrt(max(1.0, horizon / self.bar_seconds))

    def track(self, proposal: Proposal, price: float, regime: str | None = None) -> None:
        if price <= 0:
            return
        self._open.setdefault(proposal.asset, []).append(_Tracked(
            agent=proposal.agent,
            sign=proposal.direction.sign,
            entry=price,
            expires=proposal.timestamp + proposal.horizon,
            stop_loss=proposal.stop_loss,
            take_profit=proposal.take_profit,
            regime=regime,
            noise=self.noise(proposal.asset, proposal.horizon),
        ))

    def pending(self) -> int:
        return sum(len(v) for v in self._open.values())

    def due(self, now: float, symbol: str, price: float) -> list[tuple[str, float, str | None]]:
        """A new price for `symbol` at `now`: the (agent, reward in noise units, regime) of
        every tracked proposal on it whose exit this price triggers, in tracking order."""
        if price <= 0:
            return []
        v = self._vols.get(symbol)
        if v is None:
            self._vols[symbol] = _Vol(price)
        else:
            v.update(price)
        tracked = self._open.get(symbol)
        if not tracked:
            return []
        out: list[tuple[str, float, str | None]] = []
        keep: list[_Tracked] = []
        for t in tracked:
            move = t.sign * (price / t.entry - 1.0)
            if move <= -t.stop_loss or move >= t.take_profit or now >= t.expires:
                reward = move - self.cost
                out.append((t.agent, reward / t.noise if t.noise > 0 else 0.0, t.regime))
                tally = self.tallies.get(t.agent)
                if tally is None:
                    tally = self.tallies[t.agent] = AgentTally()
                tally.scored += 1
                tally.reward += reward
                if reward > 0:
                    tally.wins += 1
            else:
                keep.append(t)
        if out:
            self._open[symbol] = keep
        return out


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


class HedgeScheme:
    name = "hedge"

    def __init__(self, learning_rate: float = 0.5, min_weight: float = 0.1,
                 max_weight: float = 3.0, reward_scale: float = REWARD_SCALE) -> None:
        if learning_rate <= 0 or reward_scale <= 0:
            raise ValueError("learning_rate and reward_scale must be > 0")
        if not 0 < min_weight <= max_weight:
            raise ValueError("need 0 < min_weight <= max_weight")
        self.learning_rate = learning_rate
        self.min_weight = min_weight
        self.max_weight = max_weight
        self.reward_scale = reward_scale

    def step(self, score: float, reward: float) -> float:
        """One multiplicative update of `score` by a net return `reward`."""
        gain = _clip(reward / self.reward_scale, -1.0, 1.0)
        return _clip(score * math.exp(self.learning_rate * gain), self.min_weight,
                     self.max_weight)

    def weight(self, record: AgentRecord, regime: str | None) -> float:
        return _clip(record.score, self.min_weight, self.max_weight)

    def learn(self, record: AgentRecord, reward: float, regime: str | None) -> None:
        record.score = self.step(record.score, reward)


class RegimeScheme(HedgeScheme):
    name = "regime"

    def weight(self, record: AgentRecord, regime: str | None) -> float:
        if regime is None:
            return _clip(record.score, self.min_weight, self.max_weight)
        return _clip(record.regime_scores.get(regime, 1.0), self.min_weight, self.max_weight)

    def learn(self, record: AgentRecord, reward: float, regime: str | None) -> None:
        record.score = self.step(record.score, reward)
        if regime is not None:
            record.regime_scores[regime] = self.step(record.regime_scores.get(regime, 1.0),
                                                     reward)


class MetaScheme(RegimeScheme):
    """Per-regime weights, with the coalition gate of core/meta.py on top."""

    name = "meta"


LEARNED = {"hedge": HedgeScheme, "regime": RegimeScheme, "meta": MetaScheme}


def make_learned_scheme(settings: Settings) -> HedgeScheme:
    cls = LEARNED.get(settings.scheme)
    if cls is None:
        raise ValueError(f"not a learned scheme: {settings.scheme!r}")
    return cls(settings.learning_rate, settings.min_weight, settings.max_weight, REWARD_SCALE)
