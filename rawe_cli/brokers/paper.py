"""The built-in paper broker: fills at once at the last price, with slippage and a fee."""

from __future__ import annotations

from rawe_cli.brokers.base import keep_newest
from rawe_cli.models import Order, OrderStatus, OrderUpdate, Side


class PaperBroker:
    name = "paper"

    def __init__(self, *, fee_bps: float = 1.0, slippage_bps: float = 2.0) -> None:
        if fee_bps < 0 or slippage_bps < 0:
            raise ValueError("fee and slippage must be >= 0")
        self.fee_rate = fee_bps / 10_000
        self.slip_rate = slippage_bps / 10_000
        self.prices: dict[str, float] = {}
        self._orders: dict[str, OrderUpdate] = {}  # the newest ORDERS_KEPT
        self._filled = 0  # orders taken, for broker ids

    def on_price(self, symbol: str, price: float, timestamp: float) -> None:
        self.prices[symbol] = price

    def can_trade(self, symbol: str, timestamp: float) -> str:
        return "" if symbol in self.prices else "no price yet"

    def fill_price(self, side: Side, price: float) -> float:
        """Slippage always goes against the trader: buys pay more, sells get less."""
        return price * (1 + self.slip_rate) if side is Side.BUY else price * (1 - self.slip_rate)

    def submit(self, order: Order) -> OrderUpdate:
        known = self._orders.get(order.client_order_id)
        if known is not None:  # a retry: the same order, never a second trade
            return known
        price = self.prices.get(order.asset, order.reference_price)
        if order.qty <= 0 or price <= 0:
            update = OrderUpdate(order.client_order_id, OrderStatus.REJECTED,
                                 reason="quantity and price must be positive")
        else:
            fill = self.fill_price(order.side, price)
            update = OrderUpdate(
                order.client_order_id,
                OrderStatus.FILLED,
                filled_qty=order.qty,
                avg_price=fill,
                fee=order.qty * fill * self.fee_rate,
                broker_order_id=f"paper-{self._filled + 1}",
            )
        self._orders[order.client_order_id] = update
        keep_newest(self._orders)
        self._filled += 1
        return update

    def poll(self, client_order_id: str) -> OrderUpdate:
        known = self._orders.get(client_order_id)
        if known is None:
            return OrderUpdate(client_order_id, OrderStatus.REJECTED, reason="unknown order")
        return known
