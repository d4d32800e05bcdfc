"""Start-up reconciliation of the collective's ledger with what Alpaca holds.

Run after the ledger is restored and before the first tick:

1. Every decision the ledger still has as ``pending`` (order sent, not fully filled when the
   last state was saved) is looked up by its client_order_id (= the decision id). Found: it
   is followed again, and fills the ledger has not recorded yet are applied (only the part
   above the recorded filled quantity). Not found: the order never reached Alpaca, the
   decision is marked ``rejected``.
2. For every open position, its latest closing order (``<decision id>-x``, ``-x2``...,
   or the id of a decision that reversed it) is looked up; one Alpaca has is followed and
   its fills applied.
3. Alpaca's positions are compared with the collective's: equal, different quantities,
   held only at Alpaca (reported, never adopted) or only in the ledger (reported).
4. Alpaca's open orders that the collective does not follow are reported (left alone).

An order that was sent but whose decision never reached the ledger (a crash between the
two) needs no search: the proposals behind it are still pending on the bus, the same
decision comes back with the same id, and the submission's 422 duplicate is recovered with
get_order_by_client_id. Step 4 lists such an order if it is still open at start.
"""

from __future__ import annotations

from typing import Any

from rawe_cli.brokers.alpaca import (
    AlpacaBroker,
    Failure,
    ReconcileReport,
    classify,
    keys_rejected,
    to_update,
)
from rawe_cli.collective import (
    FLATTENED,
    PENDING,
    REJECTED,
    Collective,
    _Pending,
    exit_order_id,
)
from rawe_cli.core.portfolio import EXIT_REVERSE
from rawe_cli.models import Order, OrderStatus, Side

EXIT_RECONCILED = "reconciled"


def _side(direction_sign: int, opening: bool) -> Side:
    buy = direction_sign > 0 if opening else direction_sign < 0
    return Side.BUY if buy else Side.SELL


def reconcile(col: Collective, broker: AlpacaBroker, now: float) -> ReconcileReport:
    report = ReconcileReport()

    def look(coid: str) -> Any | None:
        found = broker.lookup(coid)
        if isinstance(found, Failure):
            report.errors.append(f"{coid}: {found}")
            return None
        return found

    # 1. pending opening orders
    for entry in sorted(col.ledger.values(), key=lambda e: e.decision.timestamp):
        if entry.status != PENDING or entry.decision.id in col.pending:
            continue
        d = entry.decision
        found = broker.lookup(d.id)
        if isinstance(found, Failure):
            report.errors.append(f"{d.id}: {found}")
            continue
        if found is None:
            entry.status = REJECTED
            entry.order_status = OrderStatus.REJECTED
            entry.reason = "not found at Alpaca on restart"
            col.dirty.decisions.add(d.id)
            if d.asset not in col.portfolio.positions:
                col.engine.set_holding(d.asset, None)
            report.not_found.append(f"{d.id} {d.asset}")
            continue
        update = to_update(found)
        broker._remember(update)
        order = Order(d.id, d.id, d.asset, _side(d.direction.sign, True), _f(found.qty),
                      entry.avg_price, "open", d.timestamp)
        col.pending[d.id] = _Pending(order, d, filled=entry.filled_qty,
                                     value=entry.filled_qty * entry.avg_price, fee=entry.fee)
        before = entry.filled_qty
        try:
            col._apply(update, now)
        except ValueError as exc:  # e.g. another decision's position on the asset
            col.pending.pop(d.id, None)
            report.errors.append(f"{d.id} {d.asset}: fills not applied: {exc}")
            continue
        report.resumed.append(f"{d.id} {d.asset} {update.status.value} "
                              f"filled {update.filled_qty:g} (was {before:g})")

    # 2. closing orders of open positions
    for asset, pos in sorted(col.portfolio.positions.items()):
        if any(p.order.asset == asset and p.decision is None for p in col.pending.values()):
            continue
        # Only the latest closing order can still be under way (no exit is sent while one
        # is): the one after the last recorded (sent, then the engine died before saving),
        # the last recorded one, or the order of a decision that flattened the position.
        # What of it is already applied: the quantity when it was sent minus what is left.
        applied = max(0.0, pos.exit_base_qty - pos.qty) if pos.exit_base_qty else 0.0
        candidates = [(exit_order_id(pos.decision_id, pos.exits + 1), EXIT_RECONCILED, 0.0)]
        if pos.exits >= 1:
            candidates.append((exit_order_id(pos.decision_id, pos.exits), EXIT_RECONCILED,
                               applied))
        candidates += [(e.decision.id, EXIT_REVERSE, applied) for e in col.ledger.values()
                       if e.status == FLATTENED and e.reason == f"closes {pos.decision_id}"]
        for coid, reason, done in candidates:
            found = look(coid)
            if found is None:
                continue
            update = to_update(found)
            broker._remember(update)
            if coid == exit_order_id(pos.decision_id, pos.exits + 1):
                pos.exits += 1  # sent before the crash, never recorded
                pos.exit_base_qty = pos.qty
            order = Order(coid, pos.decision_id, asset, _side(pos.direction.sign, False),
                          _f(found.qty), pos.mark, "close", now)
            col.pending[coid] = _Pending(order, None, close_reason=reason, filled=done,
                                         value=done * update.avg_price)
            try:
                col._apply(update, now)
            except ValueError as exc:
                col.pending.pop(coid, None)
                report.errors.append(f"{coid} {asset}: fills not applied: {exc}")
                break
            report.exits.append(f"{coid} {asset} {update.status.value} "
                                f"filled {update.filled_qty:g}")
            break

    # 3. positions
    try:
        held = broker.client.get_all_positions()
    except Exception as exc:
        failure = classify(exc)
        if failure.kind == "auth":
            raise keys_rejected(broker.cfg.endpoint, failure, broker.cfg.paper) from None
        report.errors.append(f"positions: {failure}")
        held = None
    if held is not None:
        names = {s.replace("/", ""): s for s in (*col.settings.symbols,
                                                  *col.portfolio.positions)}
        seen: set[str] = set()
        for p in held:
            symbol = names.get(p.symbol, p.symbol)
            qty = abs(_f(p.qty))
            side = str(getattr(p.side, "value", p.side))
            ours = col.portfolio.positions.get(symbol)
            seen.add(symbol)
            text = f"{symbol} {side} {qty:g}"
            if ours is None:
                report.unknown_positions.append(text)
            elif ours.direction.value == side and abs(ours.qty - qty) <= 1e-6 * max(1.0, qty):
                report.matched.append(text)
            else:
                report.differ.append(f"{text} at Alpaca, {ours.direction.value} "
                                     f"{ours.qty:g} in the ledger")
        for symbol, ours in sorted(col.portfolio.positions.items()):
            if symbol not in seen:
                report.missing_positions.append(f"{symbol} {ours.direction.value} "
                                                f"{ours.qty:g}")

    # 4. open orders the collective does not follow
    try:
        with _quiet():
            from alpaca.trading.enums import QueryOrderStatus
            from alpaca.trading.requests import GetOrdersRequest
        orders = broker.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN,
                                                           limit=500))
    except Exception as exc:
        failure = classify(exc)
        if failure.kind == "auth":
            raise keys_rejected(broker.cfg.endpoint, failure, broker.cfg.paper) from None
        report.errors.append(f"open orders: {failure}")
        orders = []
    for o in orders:
        if o.client_order_id not in col.pending:
            report.unknown_orders.append(
                f"{o.client_order_id} {o.symbol} {getattr(o.side, 'value', o.side)} "
                f"{o.qty} {getattr(o.status, 'value', o.status)}")
    return report


def _quiet() -> Any:
    from rawe_cli.brokers.alpaca import quiet_import

    return quiet_import()


def _f(x: Any) -> float:
    try:
        return float(x) if x not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0
