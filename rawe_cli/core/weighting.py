"""Agent records and weighting schemes. Pure.

A closed collective position feeds back into every agent that voted on it:

* every agent that voted *for* it records a win if its realized P&L (net of fees) was
  positive, else a loss, and is credited its share of that P&L, in proportion to the weight
  it voted with;
* every agent that voted *against* it, in the same window, records the opposite result (a win
  when the collective lost) and no P&L, since none of its money moved.

Schemes turn a record into a weight:

* ``majority``: every weight is 1 (one agent, one vote);
* ``winrate``: 0.5 + win rate, from 0.5 to 1.5; an agent with no closed trade has 1.0.

The learned schemes (``hedge``, ``regime``) live in ``core/learning.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from rawe_cli.models import ClosedTrade


@dataclass(slots=True)
class AgentRecord:
    name: str
    personality: str
    weight: float = 1.0
    wins: int = 0
    losses: int = 0
    pnl: float = 0.0
    votes: int = 0  # decisions it voted for
    updated: float = 0.0  # event time of the last change
    score: float = 1.0  # learned multiplicative weight (hedge)
    regime_scores: dict[str, float] = field(default_factory=dict)  # regime -> learned weight

    @property
    def trades(self) -> int:
        return self.wins + self.losses

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "personality": self.personality,
            "weight": self.weight,
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": self.win_rate,
            "pnl": self.pnl,
            "votes": self.votes,
            "updated": self.updated,
            "score": self.score,
            "regime_scores": dict(self.regime_scores),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> AgentRecord:
        return cls(
            name=str(data["name"]),
            personality=str(data.get("personality", data["name"])),
            weight=float(data.get("weight", 1.0)),  # type: ignore[arg-type]
            wins=int(data.get("wins", 0)),  # type: ignore[call-overload]
            losses=int(data.get("losses", 0)),  # type: ignore[call-overload]
            pnl=float(data.get("pnl", 0.0)),  # type: ignore[arg-type]
            votes=int(data.get("votes", 0)),  # type: ignore[call-overload]
            updated=float(data.get("updated", 0.0)),  # type: ignore[arg-type]
            score=float(data.get("score", 1.0)),  # type: ignore[arg-type]
            regime_scores={str(k): float(v) for k, v in  # type: ignore[union-attr]
                           dict(data.get("regime_scores") or {}).items()},
        )


class WeightScheme(Protocol):
    name: str

    def weight(self, record: AgentRecord, regime: str | None) -> float:
        """The record's voting weight now (in `regime`, for regime-aware schemes)."""
        ...

    def learn(self, record: AgentRecord, reward: float, regime: str | None) -> None:
        """Learn from one scored outcome of the agent's own proposal (counterfactual or real):
        `reward` is the proposal's return, net of costs, as a fraction of notional."""
        ...


class MajorityScheme:
    name = "majority"

    def weight(self, record: AgentRecord, regime: str | None) -> float:
        return 1.0

    def learn(self, record: AgentRecord, reward: float, regime: str | None) -> None:
        return None


class WinRateScheme:
    name = "winrate"

    def weight(self, record: AgentRecord, regime: str | None) -> float:
        rate = record.win_rate
        return 1.0 if rate is None else 0.5 + rate

    def learn(self, record: AgentRecord, reward: float, regime: str | None) -> None:
        return None


def apply_closed_trade(
    records: dict[str, AgentRecord],
    trade: ClosedTrade,
    scheme: WeightScheme,
    now: float,
    regime: str | None = None,
) -> list[str]:
    """Credit a closed trade to its voters and opponents; returns the names whose weight moved.

    Agents not in `records` (removed since they voted) are skipped.
    """
    won = trade.pnl > 0
    total = sum(trade.weights) or float(len(trade.agents)) or 1.0
    shares = trade.weights if len(trade.weights) == len(trade.agents) else (1.0,) * len(
        trade.agents)
    changed: list[str] = []
    for name, share in zip(trade.agents, shares, strict=True):
        rec = records.get(name)
        if rec is None:
            continue
        if won:
            rec.wins += 1
        else:
            rec.losses += 1
        rec.pnl += trade.pnl * share / total
        rec.updated = now
        changed.append(name)
    for name in trade.opponents:
        rec = records.get(name)
        if rec is None:
            continue
        if won:
            rec.losses += 1
        else:
            rec.wins += 1
        rec.updated = now
        changed.append(name)
    for name in changed:
        rec = records[name]
        rec.weight = scheme.weight(rec, regime)
    return changed
