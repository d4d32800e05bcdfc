"""The meta-learning layer: which coalitions of agents to follow, and how hard, per regime.

Per-regime weights (``RegimeScheme``) say how much each agent counts; they cannot say that
the Chaser and the Purist *together* are worth following in a calm market while either of
them with the Contrarian is not, nor how much agreement is enough. This layer learns that,
from counterfactual outcomes, so it keeps learning while nothing trades:

* Every decision the consensus engine reaches (a *candidate*) is tracked as if traded: it
  enters at the asset's last price and is scored, net of the round-trip cost, at the first
  later bar where its own stop-loss, take-profit or horizon is reached (real later bars,
  the portfolio's exit rules). The score goes to four cells: everything (``all``), the
  regime the candidate was made in, its *agreement* in that regime (the winning side's
  share of the total weight, in fifths: the threshold it would have needed), and its
  *coalition* in that regime (the set of agents on the winning side).
* Each cell's expected net return is shrunk toward its parent's (coalition -> agreement ->
  regime -> all -> ``start``, 1 bp: a little optimism, so that a new collective explores)
  with a prior of ``prior`` outcomes, so a cell with few outcomes says
  what its parent says, and one with many speaks for itself. A candidate is traded when its
  coalition cell expects a positive net return by more than ``confidence_z`` (0.5) standard
  errors; its size is scaled up, by at most ``max_boost``, as the evidence (the cell's
  t-statistic) grows. (z = 0.5 was chosen on development seeds 101-103 among 0, 0.5 and 1:
  it halves the trades of a world with no edge at 5-minute bars and costs a world with an
  edge about a tenth of its return.) A skipped candidate is
  recorded with the cell's figures as its reason.
* Cells forget with a half-life of ``half_life`` outcomes, so a coalition that stopped
  working, or started, is re-learned. In a world with no edge every cell drifts to minus the
  cost and the collective abstains; scoring never stops, so a coalition that starts to earn
  is back within a few dozen outcomes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rawe_cli.models import Decision

ALL = "all"
REGIME = "regime"
AGREEMENT = "agreement"
COALITION = "coalition"


@dataclass(slots=True)
class Cell:
    """A decayed tally of outcomes: weight `n`, summed net return and summed squares."""

    n: float = 0.0
    total: float = 0.0
    squares: float = 0.0
    seen: int = 0

    def add(self, reward: float, keep: float) -> None:
        self.n = self.n * keep + 1.0
        self.total = self.total * keep + reward
        self.squares = self.squares * keep + reward * reward
        self.seen += 1

    def shrunk(self, parent: float, prior: float) -> float:
        """The mean, shrunk toward `parent` with a prior of `prior` outcomes."""
        return (self.total + prior * parent) / (self.n + prior)

    def sd(self) -> float:
        if self.n < 2:
            return 0.0
        mean = self.total / self.n
        return math.sqrt(max(0.0, self.squares / self.n - mean * mean))


_NO_OUTCOMES = Cell()  # read only: the cell of a key without outcomes yet


@dataclass(slots=True)
class _Candidate:
    cells: tuple[tuple[str, str, str], ...]
    sign: int
    entry: float
    expires: float
    stop_loss: float
    take_profit: float


@dataclass(slots=True)
class Verdict:
    trade: bool
    level: str  # the cell that decided: COALITION
    mean: float = 0.0  # its shrunk expected net return
    n: float = 0.0  # its (decayed) outcomes
    boost: float = 1.0  # size multiple

    def reason(self) -> str:
        return (f"meta: {self.level} cell expects {self.mean * 1e4:+.1f} bps net "
                f"over {self.n:.0f} outcomes")


def agreement_bucket(decision: Decision, total_weight: float) -> str:
    side = max(decision.long_weight, decision.short_weight)
    share = side / total_weight if total_weight > 0 else 1.0
    return f"{min(4, int(share * 5)) / 5:.1f}+"


@dataclass(slots=True)
class MetaGate:
    cost: float = 0.0  # round trip, a fraction of notional
    prior: float = 8.0  # outcomes: how strongly a cell is shrunk toward its parent
    half_life: float = 400.0  # outcomes
    margin: float = 0.0  # trade when the expected net return is above this
    start: float = 1e-4  # the root's prior mean: a little optimism, so that it explores
    max_boost: float = 2.0  # the largest size multiple
    boost_t: float = 3.0  # the t-statistic at which the boost is full
    confidence_z: float = 0.5  # trade when mean - z * standard error is above the margin
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    _open: dict[str, list[_Candidate]] = field(default_factory=dict)
    candidates: int = 0
    skipped: int = 0

    @property
    def keep(self) -> float:
        return 0.5 ** (1.0 / self.half_life)

    def _keys(self, decision: Decision, regime: str | None, total_weight: float
              ) -> tuple[tuple[str, str, str], ...]:
        r = regime or "-"
        return (("*", ALL, "*"), (r, REGIME, r),
                (r, AGREEMENT, agreement_bucket(decision, total_weight)),
                (r, COALITION, ",".join(sorted(decision.agents))))

    def verdict(self, decision: Decision, regime: str | None, total_weight: float) -> Verdict:
        mean = self.start  # before any outcome: explore
        cell = _NO_OUTCOMES
        sd = 0.0
        for key in self._keys(decision, regime, total_weight):
            cell = self.cells.get(key) or _NO_OUTCOMES
            mean = cell.shrunk(mean, self.prior)
            if cell.n >= 2:
                sd = cell.sd()  # the deepest cell that has a spread of its own
        se = sd / math.sqrt(cell.n + self.prior) if sd > 0 else 0.0
        t = mean / se if se > 0 else 0.0
        trade = mean - self.confidence_z * se > self.margin
        boost = 1.0
        if trade and self.max_boost > 1 and t > 0:
            boost = 1.0 + (self.max_boost - 1.0) * min(1.0, t / self.boost_t)
        return Verdict(trade, COALITION, mean, cell.n, boost)

    def consider(self, decision: Decision, price: float | None, regime: str | None,
                 total_weight: float) -> Verdict:
        """Track `decision` as a candidate (scored later) and say whether to trade it."""
        verdict = self.verdict(decision, regime, total_weight)
        self.candidates += 1
        if not verdict.trade:
            self.skipped += 1
        if price is not None and price > 0:
            self._open.setdefault(decision.asset, []).append(_Candidate(
                cells=self._keys(decision, regime, total_weight),
                sign=decision.direction.sign,
                entry=price,
                expires=decision.timestamp + decision.horizon,
                stop_loss=decision.stop_loss,
                take_profit=decision.take_profit,
            ))
        return verdict

    def due(self, now: float, symbol: str, price: float) -> int:
        """A new price for `symbol`: score every candidate on it whose exit it triggers."""
        tracked = self._open.get(symbol)
        if not tracked or price <= 0:
            return 0
        keep: list[_Candidate] = []
        done = 0
        k = self.keep
        for c in tracked:
            move = c.sign * (price / c.entry - 1.0)
            if move <= -c.stop_loss or move >= c.take_profit or now >= c.expires:
                reward = move - self.cost
                for key in c.cells:
                    cell = self.cells.get(key)
                    if cell is None:
                        cell = self.cells[key] = Cell()
                    cell.add(reward, k)
                done += 1
            else:
                keep.append(c)
        if done:
            self._open[symbol] = keep
        return done

    def pending(self) -> int:
        return sum(len(v) for v in self._open.values())

    def table(self) -> list[dict[str, object]]:
        """Every cell, for reports: regime, level, key, outcomes, mean net return."""
        return [
            {"regime": r, "level": level, "key": key, "outcomes": cell.seen,
             "weight": round(cell.n, 3),
             "mean_bps": round(cell.total / cell.n * 1e4, 3) if cell.n > 0 else None}
            for (r, level, key), cell in sorted(self.cells.items())
        ]
