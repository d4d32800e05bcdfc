"""The collective: consensus, risk, broker, portfolio and weights, wired together.

The same object runs in `rawe run`, `rawe consensus` and `rawe backtest`; only the broker
(paper or Alpaca), the clock that supplies `now` and the bus in front of it differ. It does no
I/O of its own: the broker is injected, and whatever changed is listed in `dirty` for the
caller to persist.

Decisions and orders:

* A decision opening a position sends one order whose client_order_id is the decision id.
* A decision *opposite* to a held position flattens it (exit reason ``reversed``, the closing
  order's client_order_id is the new decision id) and opens nothing; the next consensus may.
* Exits (stop-loss, take-profit, holding horizon) send a closing order with client_order_id
  ``<decision id>-x`` (a second attempt, after one that ended part-filled, ``-x2``, and so
  on: a broker that is idempotent by id must never hand back an old exit's fills as new).
  No exit is sent while any order on the asset is under way.
* A decision the risk checks refuse, or that the broker may not trade now (market closed),
  or on an asset whose earlier order is still under way (a broker that fills later), is
  recorded as ``skipped`` with the reason; it is not retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from rawe_cli.brokers.base import Broker
from rawe_cli.config import Settings
from rawe_cli.core import consensus as cs
from rawe_cli.core.meta import MetaGate
from rawe_cli.core.portfolio import EXIT_REVERSE, Portfolio
from rawe_cli.core.risk import RiskLimits, size_order
from rawe_cli.core.weighting import AgentRecord, WeightScheme, apply_closed_trade
from rawe_cli.models import (
    Bar,
    ClosedTrade,
    Decision,
    Direction,
    Order,
    OrderStatus,
    OrderUpdate,
    Proposal,
    Side,
)


def exit_order_id(decision_id: str, attempt: int) -> str:
    """The client order id of a position's `attempt`-th closing order (1: ``<id>-x``)."""
    return f"{decision_id}-x" if attempt <= 1 else f"{decision_id}-x{attempt}"


# Ledger statuses of a decision.
PENDING = "pending"  # order sent, not (fully) filled yet
OPEN = "open"  # position open
CLOSED = "closed"  # position closed, P&L realized
FLATTENED = "flattened"  # an opposite decision that closed the held position
SKIPPED = "skipped"  # not traded: risk, market closed
REJECTED = "rejected"  # the broker refused the order
FINAL = frozenset((CLOSED, FLATTENED, SKIPPED, REJECTED))  # nothing will change any more


_SIDE_WORD = {d: d.value for d in Direction}  # (an enum's .value is a slow property)


@dataclass(slots=True)
class LedgerEntry:
    decision: Decision
    status: str
    order_status: OrderStatus = OrderStatus.NEW
    filled_qty: float = 0.0
    avg_price: float = 0.0
    fee: float = 0.0
    reason: str = ""
    exit_reason: str = ""
    exit_price: float | None = None
    closed_at: float | None = None
    pnl: float | None = None
    fence: int = 0

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def line(self) -> str:
        """One log line: what was decided, by whom, and what became of it."""
        d = self.decision
        text = (f"decision {d.id} {d.asset} {_SIDE_WORD[d.direction]} size={d.size:.4f} "
                f"long={d.long_weight:.2f} short={d.short_weight:.2f} "
                f"agents={','.join(d.agents)} -> {self.status}")
        return f"{text} ({self.reason})" if self.reason else text

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "id": d.id,
            "timestamp": d.timestamp,
            "asset": d.asset,
            "direction": d.direction.value,
            "size": d.size,
            "long_weight": d.long_weight,
            "short_weight": d.short_weight,
            "threshold": d.threshold,
            "agents": list(d.agents),
            "opponents": list(d.opponents),
            "weights": list(d.weights),
            "proposal_ids": list(d.proposal_ids),
            "opponent_proposal_ids": list(d.opponent_proposal_ids),
            "horizon": d.horizon,
            "stop_loss": d.stop_loss,
            "take_profit": d.take_profit,
            "status": self.status,
            "order_status": self.order_status.value,
            "filled_qty": self.filled_qty,
            "avg_price": self.avg_price,
            "fee": self.fee,
            "reason": self.reason,
            "exit_reason": self.exit_reason,
            "exit_price": self.exit_price,
            "closed_at": self.closed_at,
            "pnl": self.pnl,
            "fence": self.fence,
        }


@dataclass(slots=True)
class _Pending:
    order: Order
    decision: Decision | None  # the decision whose position it opens, if it opens one
    close_reason: str = ""
    filled: float = 0.0
    value: float = 0.0
    fee: float = 0.0


@dataclass(slots=True)
class Dirty:
    """What changed since the last save. `votes` (vote counters only) may be saved lazily."""

    agents: set[str] = field(default_factory=set)
    votes: set[str] = field(default_factory=set)
    decisions: set[str] = field(default_factory=set)
    positions: set[str] = field(default_factory=set)
    portfolio: bool = False
    marks: bool = False

    def merge(self, other: Dirty) -> None:
        """Add what `other` lists (a write that did not happen)."""
        self.agents |= other.agents
        self.votes |= other.votes
        self.decisions |= other.decisions
        self.positions |= other.positions
        self.portfolio = self.portfolio or other.portfolio
        self.marks = self.marks or other.marks

    def clear(self) -> None:
        self.agents.clear()
        self.votes.clear()
        self.decisions.clear()
        self.positions.clear()
        self.portfolio = False
        self.marks = False


class Learner:
    """Optional: scores proposals by their counterfactual outcome (see core/learning.py).

    `track` is told the regime the proposal was made in and `due` gives it back with the
    reward, so a regime-aware scheme credits the regime the vote was cast in; `due` is asked
    per bar (one symbol, one price), so it looks only at the proposals on that symbol.
    """

    def track(self, proposal: Proposal, price: float, regime: str | None) -> None: ...

    def due(self, now: float, symbol: str, price: float
            ) -> list[tuple[str, float, str | None]]: ...


class Collective:
    def __init__(
        self,
        settings: Settings,
        records: dict[str, AgentRecord],
        scheme: WeightScheme,
        broker: Broker,
        *,
        learner: Learner | None = None,
        on_decision: Callable[[LedgerEntry], None] | None = None,
        bar_seconds: float | None = None,
        write_ahead: bool = False,
    ) -> None:
        self.settings = settings
        self.bar_seconds = bar_seconds if bar_seconds is not None else settings.bar_seconds
        self.records = records
        self.scheme = scheme
        self.broker = broker
        self.learner = learner
        self.on_decision = on_decision
        self.regime: str | None = None
        absolute, share = settings.consensus_threshold()
        self.engine = cs.ConsensusEngine(
            threshold=absolute,
            threshold_share=share,
            window=settings.window.seconds(self.bar_seconds),
        )
        self.portfolio = Portfolio(settings.initial_cash)
        self.limits = RiskLimits(
            max_open_positions=settings.max_open_positions,
            max_position_fraction=settings.max_position_fraction,
            max_gross_exposure=settings.max_gross_exposure,
        )
        self.ledger: dict[str, LedgerEntry] = {}
        self.closed: list[ClosedTrade] = []
        self.pending: dict[str, _Pending] = {}
        # Write-ahead (rawe consensus): an order is not sent when it is decided but kept
        # here, its decision recorded as pending; the caller saves (fenced), then calls
        # send_orders. An engine that lost its lease fails the save and sends nothing.
        self.write_ahead = write_ahead
        self.outbox: dict[str, Order] = {}
        self.decisions_total = 0  # decisions recorded, including those no longer in memory
        self.dirty = Dirty()
        self.fence = 0
        self.event_time = 0.0  # the newest event time seen (bars, proposals)
        self.meta: MetaGate | None = None
        if settings.scheme == "meta":
            self.meta = MetaGate(cost=2 * (settings.fee_bps + settings.slippage_bps) / 1e4)
        for rec in records.values():
            self.engine.register(rec.name, 1.0)
        self._reweigh()

    # -- agents ---------------------------------------------------------------------------

    def add_agent(self, record: AgentRecord) -> None:
        if record.name in self.records:
            return
        self.records[record.name] = record
        self.engine.register(record.name, 1.0)
        self._reweigh()
        self.dirty.agents.add(record.name)

    def set_regime(self, regime: str | None) -> None:
        """Regime-aware schemes weigh agents per regime: re-weigh everyone on a change."""
        if regime == self.regime:
            return
        self.regime = regime
        self._reweigh()

    def _reweigh(self) -> None:
        """Every voting weight from the scheme, normalised to a mean of 1.

        Normalised, the weights always add up to the number of agents, so a threshold that
        agreeing agents could reach at the start stays reachable however the learning goes
        (5 winrate agents at 0.5 each, or hedge weights all at the floor, used to sum below an
        absolute threshold of 3 and silence the collective for good). What a weight says is
        trust relative to the other agents; whether to trade at all is the meta layer's call
        (core/meta.py).
        """
        if not self.records:
            return
        raw = {name: self.scheme.weight(rec, self.regime) for name, rec in self.records.items()}
        total = sum(raw.values())
        scale = len(raw) / total if total > 0 else 1.0
        for name, rec in self.records.items():
            w = raw[name] * scale if total > 0 else 1.0
            if w != rec.weight:
                rec.weight = w
                self.dirty.agents.add(name)
            self.engine.set_weight(name, w)

    # -- market data ----------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list[ClosedTrade]:
        """Mark the symbol; close its position if an exit is due; learn from due scores."""
        self.portfolio.mark(bar.symbol, bar.close)
        self.dirty.marks = True
        if bar.timestamp > self.event_time:
            self.event_time = bar.timestamp
        self.broker.on_price(bar.symbol, bar.close, bar.timestamp)
        if bar.symbol in self.portfolio.positions:
            self.dirty.positions.add(bar.symbol)
        closed: list[ClosedTrade] = []
        reason = self.portfolio.exit_reason(bar.symbol, bar.timestamp)
        if reason is not None:
            closed.extend(self._close(bar.symbol, reason, bar.timestamp))
        if self.meta is not None:
            self.meta.due(bar.timestamp, bar.symbol, bar.close)
        if self.learner is not None:
            scored = self.learner.due(bar.timestamp, bar.symbol, bar.close)
            for name, reward, regime in scored:
                rec = self.records.get(name)
                if rec is not None:
                    self.scheme.learn(rec, reward, regime)
            if scored:
                self._reweigh()
        return closed

    def check_exits(self, now: float) -> list[ClosedTrade]:
        """Time exits for every position (bars may stop for a symbol)."""
        closed: list[ClosedTrade] = []
        for asset, reason in self.portfolio.due_exits(now):
            closed.extend(self._close(asset, reason, now))
        return closed

    # -- proposals ------------------------------------------------------------------------

    def on_proposal(self, proposal: Proposal, now: float) -> tuple[str, Decision | None]:
        status, decision = self.engine.submit(proposal, now)
        if status == cs.DUPLICATE or status == cs.UNKNOWN_AGENT or status == cs.EXPIRED:
            return status, None
        if self.learner is not None:
            price = self.portfolio.marks.get(proposal.asset)
            if price is not None:
                self.learner.track(proposal, price, self.regime)
        if decision is not None and self.meta is not None and decision.id not in self.ledger:
            verdict = self.meta.consider(decision, self.portfolio.marks.get(decision.asset),
                                         self.regime, float(len(self.records)))
            if not verdict.trade and status != cs.SUPPRESSED:
                self._record(LedgerEntry(decision, SKIPPED, OrderStatus.SKIPPED,
                                         reason=verdict.reason()))
                if self.on_decision is not None:
                    self.on_decision(self.ledger[decision.id])
                return status, decision
            if verdict.boost != 1.0:  # a coalition with evidence of an edge: a larger stake
                decision = msgspec.structs.replace(decision, size=round(
                    min(1.0, decision.size * verdict.boost), 6))
        if decision is None or status == cs.SUPPRESSED:
            return status, decision  # a suppressed decision consumed votes, traded nothing
        self._execute(decision, now)
        return status, decision

    def _record(self, entry: LedgerEntry) -> None:
        entry.fence = self.fence
        if entry.decision.id not in self.ledger:
            self.decisions_total += 1
        self.ledger[entry.decision.id] = entry
        self.dirty.decisions.add(entry.decision.id)
        for name in entry.decision.agents:
            rec = self.records.get(name)
            if rec is not None:
                rec.votes += 1
                self.dirty.votes.add(name)

    def _execute(self, decision: Decision, now: float) -> None:
        if decision.id in self.ledger:  # replayed after a crash: never twice
            return
        self._open_or_flatten(decision, now)
        if self.on_decision is not None:
            self.on_decision(self.ledger[decision.id])

    def _open_or_flatten(self, decision: Decision, now: float) -> None:
        pending = self.pending
        if pending and any(p.order.asset == decision.asset for p in pending.values()):
            # a broker that fills later (Alpaca) still works on an order for this asset
            self._record(LedgerEntry(decision, SKIPPED, OrderStatus.SKIPPED,
                                     reason="an order on the asset is still under way"))
            return
        held = self.portfolio.positions.get(decision.asset)
        blocked = self.broker.can_trade(decision.asset, now)
        if held is not None and held.direction is not decision.direction:
            if blocked:  # nothing can be sent: say so, do not pretend to have flattened
                self._record(LedgerEntry(decision, SKIPPED, OrderStatus.SKIPPED,
                                         reason=f"cannot flatten {held.decision_id}: {blocked}"))
                return
            entry = LedgerEntry(decision, FLATTENED, reason=f"closes {held.decision_id}")
            self._record(entry)
            self._close(decision.asset, EXIT_REVERSE, now, client_order_id=decision.id)
            return
        # Opening orders under way (a broker that fills later, or written ahead and not sent
        # yet) count against the limits as the positions they will become.
        coming = [p for p in pending.values() if p.decision is not None
                  and p.order.asset not in self.portfolio.positions] if pending else []
        sizing = size_order(decision, self.portfolio, self.limits, pending_count=len(coming),
                            pending_notional=sum(p.order.qty * p.order.reference_price
                                                 for p in coming) if coming else 0)
        reason = blocked or sizing.reason
        if reason:
            self._record(LedgerEntry(decision, SKIPPED, OrderStatus.SKIPPED, reason=reason))
            return
        side = Side.BUY if decision.direction.sign > 0 else Side.SELL
        order = Order(decision.id, decision.id, decision.asset, side, sizing.qty,
                      self.portfolio.marks[decision.asset], "open", now)
        status = OrderStatus.NEW if self.write_ahead else OrderStatus.SUBMITTED
        self._record(LedgerEntry(decision, PENDING, status))
        self.engine.set_holding(decision.asset, decision.direction)
        self.pending[order.client_order_id] = _Pending(order, decision)
        self._send(order, now)

    def _close(self, asset: str, reason: str, now: float,
               client_order_id: str | None = None) -> list[ClosedTrade]:
        pos = self.portfolio.positions.get(asset)
        if pos is None:
            return []
        if any(p.order.asset == asset for p in self.pending.values()):
            return []  # an order on the asset (opening or closing) is under way: wait
        blocked = self.broker.can_trade(asset, now)
        if blocked:
            return []  # try again at the next bar
        if client_order_id is None:
            pos.exits += 1
            coid = exit_order_id(pos.decision_id, pos.exits)
        else:
            coid = client_order_id
        pos.exit_base_qty = pos.qty
        self.dirty.positions.add(asset)
        side = Side.SELL if pos.direction.sign > 0 else Side.BUY
        order = Order(coid, pos.decision_id, asset, side, pos.qty, pos.mark, "close", now)
        self.pending[coid] = _Pending(order, None, close_reason=reason)
        return self._send(order, now)

    def _send(self, order: Order, now: float) -> list[ClosedTrade]:
        if self.write_ahead:
            self.outbox[order.client_order_id] = order
            return []
        return self._apply(self.broker.submit(order), now)

    def send_orders(self, now: float, only: list[str] | None = None) -> list[ClosedTrade]:
        """Write-ahead: send the orders decided since the last call (`only`: those of these
        client order ids; the others stay in the outbox). Call it only after the state that
        records them was saved."""
        if only is None:
            out, self.outbox = self.outbox, {}
        else:
            out = {coid: self.outbox.pop(coid) for coid in only if coid in self.outbox}
        closed: list[ClosedTrade] = []
        for coid, order in out.items():
            if coid in self.pending:
                closed.extend(self._apply(self.broker.submit(order), now))
        return closed

    def poll_orders(self, now: float) -> list[ClosedTrade]:
        """Ask the broker about every order still under way (not those not sent yet).

        A broker that works off the engine's loop (brokers/alpaca_streaming.py) has
        `updates(open_orders)`: the events it gathered since the last call (stream, REST
        answers), applied here in order, on the caller's thread; nothing waits for Alpaca."""
        closed: list[ClosedTrade] = []
        sent = [coid for coid in self.pending if coid not in self.outbox]
        updates = getattr(self.broker, "updates", None)
        if updates is not None:
            for update in updates(sent):
                closed.extend(self._apply(update, now))
            return closed
        for coid in sent:
            closed.extend(self._apply(self.broker.poll(coid), now))
        return closed

    def prune(self, now: float, keep_seconds: float, keep_final: int = 200) -> int:
        """Bounded memory: forget final decisions (closed, skipped, ...) older than
        `keep_seconds`, beyond the newest `keep_final` or so, once saved; the ledger in Redis
        keeps them. Open and pending decisions always stay. Returns how many were dropped.
        Closed trades kept for reports: the newest `keep_final`.

        Runs every half second in `rawe consensus`, so it must not cost in proportion to the
        ledger: the ledger is in decision order (event time), so the old entries are at its
        front, and the scan stops at the first one that is recent. (A full sort of the final
        entries cost 10-20 ms at 20,000 decisions, the p99 latency at 1,000 proposals/s.)"""
        if len(self.closed) > keep_final:
            del self.closed[:len(self.closed) - keep_final]
        live = len(self.pending) + len(self.portfolio.positions)  # not final: at most these
        room = len(self.ledger) - keep_final - live
        if room <= 0:
            return 0
        cutoff = now - keep_seconds
        in_flight = {p.order.decision_id for p in self.pending.values()}
        drop: list[str] = []
        for did, e in self.ledger.items():
            if len(drop) >= room or e.decision.timestamp >= cutoff:
                break
            if (e.status not in FINAL or (e.closed_at or e.decision.timestamp) >= cutoff
                    or did in self.dirty.decisions or did in in_flight):
                continue
            drop.append(did)
        for did in drop:
            del self.ledger[did]
        return len(drop)

    # -- fills ----------------------------------------------------------------------------

    def _apply(self, update: OrderUpdate, now: float) -> list[ClosedTrade]:
        pend = self.pending.get(update.client_order_id)
        if pend is None:
            return []
        closed: list[ClosedTrade] = []
        delta = update.filled_qty - pend.filled
        if delta > 1e-12:
            value = update.filled_qty * update.avg_price - pend.value
            fee = max(0.0, update.fee - pend.fee)
            price = value / delta
            pend.filled = update.filled_qty
            pend.value = update.filled_qty * update.avg_price
            pend.fee = max(update.fee, pend.fee)
            if pend.decision is not None:
                self.portfolio.open_fill(pend.decision, delta, price, fee, now)
                self.dirty.positions.add(pend.order.asset)
            else:
                trade = self.portfolio.close_fill(pend.order.asset, delta, price, fee, now,
                                                  pend.close_reason)
                self.dirty.positions.add(pend.order.asset)
                if trade is not None:
                    closed.append(trade)
                    self._settle(trade, now)
            self.dirty.portfolio = True
        if pend.decision is not None:
            entry = self.ledger[pend.decision.id]
            entry.order_status = update.status
            entry.filled_qty = pend.filled
            entry.avg_price = pend.value / pend.filled if pend.filled else 0.0
            entry.fee = pend.fee
            if update.reason:
                entry.reason = update.reason
            if pend.filled > 0:
                entry.status = OPEN if entry.status == PENDING else entry.status
            elif update.status.final:
                entry.status = REJECTED
            self.dirty.decisions.add(entry.decision.id)
        if update.status.final:
            del self.pending[update.client_order_id]
            if pend.decision is not None and pend.filled == 0:
                self.engine.set_holding(pend.order.asset, None)
        return closed

    def _settle(self, trade: ClosedTrade, now: float) -> None:
        """A position closed: its real P&L goes to the ledger and to the voters' weights."""
        self.closed.append(trade)
        self.engine.set_holding(trade.asset, None)
        entry = self.ledger.get(trade.decision_id)
        if entry is not None:
            entry.status = CLOSED
            entry.exit_reason = trade.reason
            entry.exit_price = trade.exit_price
            entry.closed_at = trade.closed_at
            entry.pnl = trade.pnl
            self.dirty.decisions.add(entry.decision.id)
        changed = apply_closed_trade(self.records, trade, self.scheme, now, self.regime)
        self.dirty.agents.update(changed)
        self._reweigh()

    def mark_all_dirty(self) -> None:
        """Everything will be written at the next save (after Redis lost its data)."""
        self.dirty.agents.update(self.records)
        self.dirty.decisions.update(self.ledger)
        self.dirty.positions.update(self.portfolio.positions)
        self.dirty.portfolio = True
        self.dirty.marks = True

    # -- snapshots ------------------------------------------------------------------------

    def portfolio_snapshot(self) -> dict[str, Any]:
        pf = self.portfolio
        return {
            "cash": pf.cash,
            "equity": pf.equity(),
            "realized_pnl": pf.realized,
            "unrealized_pnl": pf.unrealized(),
            "fees": pf.fees,
            "open_positions": [
                {
                    "asset": p.asset,
                    "direction": p.direction.value,
                    "qty": p.qty,
                    "entry_price": p.entry_price,
                    "mark": p.mark,
                    "unrealized_pnl": p.unrealized(),
                    "decision_id": p.decision_id,
                    "opened_at": p.opened_at,
                }
                for p in sorted(pf.positions.values(), key=lambda p: p.asset)
            ],
            "closed_positions": pf.closed_count,
        }
