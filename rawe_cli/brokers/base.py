"""The Broker protocol: what the collective needs from a place that executes orders."""

from __future__ import annotations

from typing import Any, Protocol

from rawe_cli.models import Order, OrderUpdate


class Broker(Protocol):
    name: str

    def on_price(self, symbol: str, price: float, timestamp: float) -> None:
        """The latest price of a symbol (the paper broker fills at it)."""
        ...

    def submit(self, order: Order) -> OrderUpdate:
        """Send an order. Idempotent: the same client_order_id never trades twice."""
        ...

    def poll(self, client_order_id: str) -> OrderUpdate:
        """The order's latest state (for brokers that fill asynchronously)."""
        ...

    def can_trade(self, symbol: str, timestamp: float) -> str:
        """Empty if orders on `symbol` may be sent now, else the reason (e.g. market closed)."""
        ...


ORDERS_KEPT = 10_000  # orders a broker remembers (for idempotent retries), newest first


def keep_newest(orders: dict[str, Any], limit: int = ORDERS_KEPT) -> None:
    """Bounded memory: forget the oldest entries of an insertion-ordered dict past `limit`
    (a retry of an order comes seconds after it, not 10,000 orders later)."""
    while len(orders) > limit:
        del orders[next(iter(orders))]
