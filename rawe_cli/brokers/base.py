"""The Broker protocol: what the collective needs from a place that executes orders."""

from __future__ import annotations

from typing import Protocol

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
