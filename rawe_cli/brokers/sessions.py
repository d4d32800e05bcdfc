"""A broker that keeps to exchange sessions: equities trade only while their exchange is
open (replayed or downloaded history); crypto (symbols with ``/``) at any hour.

It wraps another broker (the paper broker in a backtest): `can_trade` says "market closed"
outside a session, and the collective then neither opens nor exits a position on that
symbol at that bar (it tries again at the next one). Everything else is the inner broker's.
"""

from __future__ import annotations

from typing import Any

from rawe_cli.brokers.base import Broker
from rawe_cli.core.sessions import Sessions
from rawe_cli.models import Order, OrderUpdate


class SessionBroker:
    def __init__(self, inner: Broker, sessions: Sessions, bar_seconds: float) -> None:
        self.inner = inner
        self.sessions = sessions
        self.bar_seconds = bar_seconds
        self.name = inner.name
        self.closed_refusals = 0  # can_trade answers "market closed"

    def on_price(self, symbol: str, price: float, timestamp: float) -> None:
        self.inner.on_price(symbol, price, timestamp)

    def can_trade(self, symbol: str, timestamp: float) -> str:
        if not self.sessions.tradable(symbol, timestamp, self.bar_seconds):
            self.closed_refusals += 1
            return f"market closed ({self.sessions.name} has no session then)"
        return self.inner.can_trade(symbol, timestamp)

    def submit(self, order: Order) -> OrderUpdate:
        return self.inner.submit(order)

    def poll(self, client_order_id: str) -> OrderUpdate:
        return self.inner.poll(client_order_id)

    def __getattr__(self, name: str) -> Any:  # the inner broker's extras (prices, stats)
        return getattr(self.inner, name)
