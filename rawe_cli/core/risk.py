"""Risk checks between a decision and its order. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from rawe_cli.core.portfolio import Portfolio
from rawe_cli.models import Decision


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_open_positions: int = 10
    max_position_fraction: float = 0.25
    max_gross_exposure: float = 1.5
    # How many times this book's equity the collective's is: N for one of N shards, whose
    # sizes (fractions of the collective's equity) are taken against N x its own equity.
    equity_scale: float = 1.0


@dataclass(frozen=True, slots=True)
class Sizing:
    qty: float
    notional: float
    reason: str = ""  # non-empty: do not trade

    @property
    def ok(self) -> bool:
        return not self.reason


def size_order(decision: Decision, portfolio: Portfolio, limits: RiskLimits, *,
               pending_count: int = 0, pending_notional: float = 0.0) -> Sizing:
    """Quantity for a decision: its size (a fraction of equity, capped) at the last price.

    `pending_count` / `pending_notional`: opening orders not filled yet (a broker that fills
    later, or orders written ahead and not sent), counted as the positions they will be.
    """
    price = portfolio.marks.get(decision.asset)
    if price is None or price <= 0:
        return Sizing(0.0, 0.0, "no price for the asset yet")
    if decision.asset in portfolio.positions:
        return Sizing(0.0, 0.0, "a position on the asset is still open")
    if len(portfolio.positions) + pending_count >= limits.max_open_positions:
        return Sizing(0.0, 0.0, f"max_open_positions ({limits.max_open_positions}) reached")
    equity = portfolio.equity()
    if equity <= 0:
        return Sizing(0.0, 0.0, "equity is not positive")
    fraction = min(decision.size, limits.max_position_fraction)
    notional = fraction * equity
    if limits.equity_scale != 1.0:
        notional *= limits.equity_scale
    if (portfolio.gross_exposure() + pending_notional + notional
            > limits.max_gross_exposure * equity):
        return Sizing(0.0, 0.0,
                      f"gross exposure would pass {limits.max_gross_exposure:g}x equity")
    return Sizing(notional / price, notional)
