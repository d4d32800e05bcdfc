"""The meta-learning layer: which coalitions of agents to follow, per market regime. Pure.

Per-regime weights (``RegimeScheme``) say how much each agent counts; they cannot say that
the Chaser and the Purist *together* are worth following in a calm market while either of
them with the Contrarian is not, nor how much agreement is enough. This layer learns that,
from counterfactual outcomes, so it keeps learning while nothing trades:

* Every decision the consensus engine reaches (a *candidate*) is tracked as if traded: it
  enters at the asset's last price and is scored, net of the round-trip cost, at the first
  later bar where its own stop-loss, take-profit or horizon is reached (real later bars,
  the portfolio's exit rules). The score goes to two cells of the regime the decision was
  made in: its *coalition* (the set of agents on the winning side) and its *agreement*
  bucket (the winning side's share of the total weight, in fifths).
* A candidate is traded when its cell's expected net return is positive. The coalition
  cell decides once it has ``min_samples`` (decayed) outcomes; before that the agreement
  bucket does, and before that the candidate is traded (exploration). So, per regime, the
  collective learns both whom to follow together and the agreement (the threshold) it needs;
  a skipped candidate is recorded with the cell's figures as its reason.
* Cells forget with a half-life of ``half_life`` outcomes, so a coalition that stopped
  working, or started, is re-learned; in a world with no edge every cell drifts to the cost
  and the collective abstains, and any coalition that earns is back within a few dozen
  outcomes, since scoring never stops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rawe_cli.models import Decision

COALITION = "coalition"
AGREEMENT = "agreement"


@dataclass(slots=True)
class Cell:
    """A decayed tally of outcomes: weight `n` and summed net return `total`."""

    n: float = 0.0
    total: float = 0.0
    seen: int = 0

    def add(self, reward: float, keep: float) -> None:
        self.n = self.n * keep + 1.0
        self.total = self.total * keep + reward
        self.seen += 1

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n > 0 else 0.0


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
    level: str  # COALITION, AGREEMENT or "explore"
    mean: float = 0.0
    n: float = 0.0

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
    min_samples: float = 12.0
    half_life: float = 300.0  # outcomes
    margin: float = 0.0  # trade when the expected net return is above this
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    _open: dict[str, list[_Candidate]] = field(default_factory=dict)
    candidates: int = 0
    skipped: int = 0

    @property
    def keep(self) -> float:
        return 0.5 ** (1.0 / self.half_life)

    def _keys(self, decision: Decision, regime: str | None, total_weight: float
              ) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
        r = regime or "-"
        coalition = ",".join(sorted(decision.agents))
        return (r, COALITION, coalition), (r, AGREEMENT, agreement_bucket(decision,
                                                                          total_weight))

    def verdict(self, decision: Decision, regime: str | None, total_weight: float) -> Verdict:
        coalition, agreement = self._keys(decision, regime, total_weight)
        for level, key in ((COALITION, coalition), (AGREEMENT, agreement)):
            cell = self.cells.get(key)
            if cell is not None and cell.n >= self.min_samples:
                return Verdict(cell.mean > self.margin, level, cell.mean, cell.n)
        return Verdict(True, "explore")

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
             "weight": round(cell.n, 3), "mean_bps": round(cell.mean * 1e4, 3)
             if math.isfinite(cell.mean) else None}
            for (r, level, key), cell in sorted(self.cells.items())
        ]
