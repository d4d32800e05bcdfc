"""Portfolio accounting: cash, positions, marks, exits and realized P&L. Pure.

Cash moves with every fill: buying costs qty * price + fee, selling brings qty * price -
fee (a short sale credits its proceeds). Equity is cash plus the signed market value of the
open positions. A closed position's realized P&L is

    sign * (exit price - entry price) * qty - entry fees - exit fees

and a position's unrealized P&L counts its entry fee already paid, so that at every moment

    equity == initial cash + realized P&L + unrealized P&L.
"""

from __future__ import annotations

from dataclasses import dataclass

from rawe_cli.models import ClosedTrade, Decision, Direction, Position

EXIT_HORIZON = "horizon"
EXIT_STOP = "stop_loss"
EXIT_TAKE = "take_profit"
EXIT_REVERSE = "reversed"
EXIT_END = "end_of_run"


@dataclass(slots=True)
class _Closing:
    """What has been sold (or bought back) of a position so far."""

    qty: float = 0.0
    value: float = 0.0  # sum of qty * price
    fees: float = 0.0
    entry_fees: float = 0.0  # the share of the entry fee that the closed qty carried
    pnl: float = 0.0


class Portfolio:
    def __init__(self, initial_cash: float) -> None:
        self.initial_cash = initial_cash
        self.cash = initial_cash
        self.realized = 0.0
        self.fees = 0.0
        self.positions: dict[str, Position] = {}
        self.marks: dict[str, float] = {}
        self._closing: dict[str, _Closing] = {}
        self.closed_count = 0

    # -- marks ----------------------------------------------------------------------------

    def mark(self, symbol: str, price: float) -> None:
        self.marks[symbol] = price
        pos = self.positions.get(symbol)
        if pos is not None:
            pos.mark = price

    # -- valuation ------------------------------------------------------------------------

    def unrealized(self) -> float:
        return sum(p.unrealized() for p in self.positions.values())

    def equity(self) -> float:
        return self.cash + sum(p.direction.sign * p.qty * p.mark for p in self.positions.values())

    def gross_exposure(self) -> float:
        return sum(abs(p.qty * p.mark) for p in self.positions.values())

    def holding(self, asset: str) -> Direction | None:
        pos = self.positions.get(asset)
        return None if pos is None else pos.direction

    # -- fills ----------------------------------------------------------------------------

    def open_fill(self, decision: Decision, qty: float, price: float, fee: float,
                  now: float) -> Position:
        """Apply a (possibly partial) fill of the order that opens `decision`'s position."""
        if qty <= 0 or price <= 0 or fee < 0:
            raise ValueError(f"bad fill: qty={qty} price={price} fee={fee}")
        sign = decision.direction.sign
        self.cash -= sign * qty * price + fee
        self.fees += fee
        pos = self.positions.get(decision.asset)
        if pos is None or pos.decision_id != decision.id:
            if pos is not None:
                raise ValueError(f"{decision.asset}: a position is already open")
            pos = Position(
                asset=decision.asset,
                direction=decision.direction,
                qty=qty,
                entry_price=price,
                entry_fee=fee,
                opened_at=now,
                decision_id=decision.id,
                agents=decision.agents,
                opponents=decision.opponents,
                weights=decision.weights,
                horizon=decision.horizon,
                stop_loss=decision.stop_loss,
                take_profit=decision.take_profit,
                mark=self.marks.get(decision.asset, price),
            )
            self.positions[decision.asset] = pos
        else:  # another partial fill of the same order: average the entry
            total = pos.qty + qty
            pos.entry_price = (pos.entry_price * pos.qty + price * qty) / total
            pos.qty = total
            pos.entry_fee += fee
        return pos

    def close_fill(self, asset: str, qty: float, price: float, fee: float, now: float,
                   reason: str) -> ClosedTrade | None:
        """Apply a (possibly partial) closing fill; returns the ClosedTrade once flat."""
        pos = self.positions.get(asset)
        if pos is None:
            raise ValueError(f"{asset}: no open position to close")
        if qty <= 0 or price <= 0 or fee < 0:
            raise ValueError(f"bad fill: qty={qty} price={price} fee={fee}")
        qty = min(qty, pos.qty)
        sign = pos.direction.sign
        self.cash += sign * qty * price - fee
        self.fees += fee
        share = qty / pos.qty
        entry_fee_part = pos.entry_fee * share
        part_pnl = sign * (price - pos.entry_price) * qty - entry_fee_part - fee
        self.realized += part_pnl
        closing = self._closing.setdefault(asset, _Closing())
        closing.qty += qty
        closing.value += qty * price
        closing.fees += fee
        closing.entry_fees += entry_fee_part
        closing.pnl += part_pnl
        pos.qty -= qty
        pos.entry_fee -= entry_fee_part
        if pos.qty > 1e-12:
            return None
        del self.positions[asset]
        del self._closing[asset]
        self.closed_count += 1
        return ClosedTrade(
            decision_id=pos.decision_id,
            asset=asset,
            direction=pos.direction,
            qty=closing.qty,
            entry_price=pos.entry_price,
            exit_price=closing.value / closing.qty,
            fees=closing.fees + closing.entry_fees,
            pnl=closing.pnl,
            opened_at=pos.opened_at,
            closed_at=now,
            reason=reason,
            agents=pos.agents,
            opponents=pos.opponents,
            weights=pos.weights,
        )

    # -- exits ----------------------------------------------------------------------------

    def exit_reason(self, asset: str, now: float) -> str | None:
        """Why the position on `asset` should close now, or None."""
        pos = self.positions.get(asset)
        if pos is None or pos.entry_price <= 0:
            return None
        move = pos.direction.sign * (pos.mark / pos.entry_price - 1.0)
        if move <= -pos.stop_loss:
            return EXIT_STOP
        if move >= pos.take_profit:
            return EXIT_TAKE
        if now - pos.opened_at >= pos.horizon:
            return EXIT_HORIZON
        return None

    def due_exits(self, now: float) -> list[tuple[str, str]]:
        out = []
        for asset in sorted(self.positions):
            reason = self.exit_reason(asset, now)
            if reason is not None:
                out.append((asset, reason))
        return out
