"""Alpaca's trade-update stream: alpaca-py's TradingStream, told when it is up and down, and
the merge that makes fills idempotent.

Every update, whether it came by stream or by a REST read, carries the order's *cumulative*
filled quantity and average price (Alpaca's ``filled_qty`` and ``filled_avg_price``); the
collective applies only what is above what it has (collective._apply). `UpdateMerge` sits in
front of that: a stream event whose execution id was seen is dropped, and so is an update
that says nothing new (an older cumulative state arriving late, the same state twice, any
update after the order's final one). A fill therefore counts once however many ways it comes
in: stream, REST catch-up after a reconnect, the submission's answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rawe_cli.brokers.alpaca import quiet_import, to_update
from rawe_cli.brokers.base import keep_newest
from rawe_cli.models import OrderUpdate

EPS = 1e-9


def from_trade_update(update: Any) -> tuple[str | None, OrderUpdate]:
    """An alpaca-py TradeUpdate -> (its execution id, the order's cumulative state)."""
    execution = getattr(update, "execution_id", None)
    return (str(execution) if execution else None), to_update(update.order)


class UpdateMerge:
    """Which updates are news to the ledger (one thread at a time: the caller's lock)."""

    def __init__(self) -> None:
        self.executions: dict[str, None] = {}  # execution ids seen, oldest first (bounded)
        self.last: dict[str, OrderUpdate] = {}  # client_order_id -> newest state passed on

    def offer(self, update: OrderUpdate, execution_id: str | None = None
              ) -> OrderUpdate | None:
        """`update` if it tells something new, else None."""
        if execution_id is not None:
            if execution_id in self.executions:
                return None
            self.executions[execution_id] = None
            keep_newest(self.executions)
        coid = update.client_order_id
        prev = self.last.get(coid)
        if prev is not None:
            if prev.status.final:
                return None  # nothing comes after a final state
            if update.filled_qty < prev.filled_qty - EPS:
                return None  # older than what was passed on
            if update.filled_qty <= prev.filled_qty + EPS and update.status is prev.status:
                return None  # the same state again
        self.last[coid] = update
        keep_newest(self.last)
        return update

    def known(self, coid: str) -> OrderUpdate | None:
        return self.last.get(coid)


def quiet_sdk_logs() -> None:
    """alpaca-py logs each reconnect (with a traceback when the server is gone); the broker
    says the stream's state in its own one-line messages instead."""
    logger = logging.getLogger("alpaca.trading.stream")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def make_stream(key: str, secret: str, *, paper: bool, url: str | None,
                on_update: Callable[[Any], Awaitable[None]],
                on_up: Callable[[], None], on_down: Callable[[str], None]) -> Any:
    """A TradingStream listening to trade_updates, that calls `on_up` once it is authorized and
    listening, and `on_down(reason)` when a connection attempt fails or the connection ends.

    Reconnecting (with alpaca-py's back-off, 0.5-1 s after a drop, growing to 30 s while the
    server is gone) stays alpaca-py's. Run it with ``await stream._run_forever()`` on a loop of
    its own; stop it with ``await stream.stop_ws(); await stream.close()``.
    """
    quiet_sdk_logs()
    with quiet_import():
        import websockets
        from alpaca.trading.stream import TradingStream

    def reason(exc: BaseException) -> str:
        text = str(exc).strip().splitlines()
        return f"{exc.__class__.__name__}: {text[0][:160]}" if text else exc.__class__.__name__

    class Stream(TradingStream):  # type: ignore[misc]
        async def _start_ws(self) -> None:
            try:
                await super()._start_ws()
            except BaseException as exc:
                on_down(reason(exc))
                raise
            on_up()

        async def _consume(self) -> None:
            try:
                await super()._consume()
            except websockets.WebSocketException as exc:  # the connection ended
                on_down(reason(exc))
                raise
            # a handler's or a frame's error (connection kept) goes on to alpaca-py's loop

    stream = Stream(key, secret, paper=paper, url_override=url)
    stream.subscribe_trade_updates(on_update)
    return stream
