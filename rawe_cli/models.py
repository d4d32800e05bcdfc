"""The domain's value types: frozen dataclasses, msgspec Structs and string enums.

Timestamps are event time, float seconds since the Unix epoch (UTC). Money is float
dollars. Every type here is plain data: no I/O, no clock.

What travels on the bus (a Proposal, a Bar, a NarrativeEvent) is a `msgspec.Struct`: the
codec decodes a message straight into it, in one compiled step that also checks the ranges
annotated here (`Meta`), so a decoded proposal is the engine's vote itself, with no copy.
Constructing one in code checks nothing (as a dataclass would not). They are frozen and
untracked by the garbage collector (`gc=False`: they hold only text, numbers and tuples of
text, so they can never be part of a reference cycle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

SCHEMA_VERSION = 1  # of the bus messages (their field `v`)
MAX_ID_LENGTH = 100  # characters, of a proposal's texts and a bar's symbol

# Wire constraints (checked when a message is decoded, not when a value is built in code).
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Label = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
OpenFraction = Annotated[float, msgspec.Meta(gt=0, le=1)]  # 0 < x <= 1
Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Sentiment = Annotated[float, msgspec.Meta(ge=-1, le=1)]
Symbols = Annotated[tuple[Annotated[str, msgspec.Meta(min_length=1)], ...],
                    msgspec.Meta(min_length=1)]
Version = Literal[1]


class Direction(StrEnum):
    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        return 1 if self is Direction.LONG else -1

    @property
    def opposite(self) -> Direction:
        return Direction.SHORT if self is Direction.LONG else Direction.LONG


class SignalType(StrEnum):
    NARRATIVE_LEADS = "narrative_leads"
    NARRATIVE_EXHAUSTION = "narrative_exhaustion"


class OrderStatus(StrEnum):
    NEW = "new"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    SKIPPED = "skipped"  # never sent: risk check, market closed, duplicate holding

    @property
    def final(self) -> bool:
        return self in (
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.REJECTED,
            OrderStatus.SKIPPED,
        )


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Bar(msgspec.Struct, frozen=True, gc=False, tag="bar", tag_field="kind"):
    timestamp: NonNegative
    symbol: Name
    open: Positive
    high: Positive
    low: Positive
    close: Positive
    volume: NonNegative = 0.0
    schema: Version = msgspec.field(default=SCHEMA_VERSION, name="v")


class NarrativeEvent(msgspec.Struct, frozen=True, gc=False, tag="narrative",
                     tag_field="kind"):
    timestamp: NonNegative
    narrative_id: Name
    symbols: Symbols
    intensity: NonNegative
    sentiment: Sentiment  # -1 .. 1
    headline: str = ""
    source: str = ""
    schema: Version = msgspec.field(default=SCHEMA_VERSION, name="v")


@dataclass(frozen=True, slots=True)
class ArbitrageSignal:
    """What the narrative engine sees: a narrative and a price out of step."""

    timestamp: float
    narrative_id: str
    financial_asset: str
    signal_type: SignalType
    strength: float  # 0 .. 1
    expected_profit: float  # expected move as a fraction of price, >= 0
    risk_score: float  # 0 .. 1
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def direction(self) -> Direction:
        return Direction(self.metadata.get("direction", "long"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "narrative_id": self.narrative_id,
            "financial_asset": self.financial_asset,
            "signal_type": self.signal_type.value,
            "strength": self.strength,
            "expected_profit": self.expected_profit,
            "risk_score": self.risk_score,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArbitrageSignal:
        return cls(
            timestamp=float(data["timestamp"]),
            narrative_id=str(data["narrative_id"]),
            financial_asset=str(data["financial_asset"]),
            signal_type=SignalType(data["signal_type"]),
            strength=float(data["strength"]),
            expected_profit=float(data["expected_profit"]),
            risk_score=float(data["risk_score"]),
            metadata=dict(data.get("metadata") or {}),
        )


class Proposal(msgspec.Struct, frozen=True, gc=False):
    """One agent's vote: trade `asset` in `direction` with `size` (a fraction of equity).

    On the wire (README, "Wire format of a proposal") `id`, `agent`, `asset`, `direction`,
    `size` and `timestamp` are required; `schema` is the message's `v`."""

    id: Name
    agent: Name
    asset: Name
    direction: Direction
    size: OpenFraction  # fraction of the collective's equity, 0 < size <= 1
    expected_profit: float = 0.0
    risk_score: Fraction = 0.5
    narrative_id: Label = ""
    signal_type: Label = "manual"
    # Required on the wire; the default only makes the field order possible.
    timestamp: NonNegative = msgspec.field(default=msgspec.UNSET)  # type: ignore[assignment]
    confidence: Fraction = 1.0
    horizon: Positive = 300.0  # seconds of event time
    stop_loss: OpenFraction = 0.02  # fraction of entry price
    take_profit: Positive = 0.04  # fraction of entry price
    schema: Version = msgspec.field(default=SCHEMA_VERSION, name="v")


@dataclass(frozen=True, slots=True)
class Vote:
    """A proposal as the consensus engine counted it."""

    agent: str
    proposal_id: str
    direction: Direction
    weight: float


class Decision(msgspec.Struct, frozen=True, gc=False):
    """A collective decision: the winning side of one asset's window (a Struct: one is
    built per quorum, on the engine's hot path)."""

    id: str
    timestamp: float
    asset: str
    direction: Direction
    size: float
    long_weight: float
    short_weight: float
    threshold: float
    agents: tuple[str, ...]  # voted for the winning side
    opponents: tuple[str, ...]  # voted for the other side
    proposal_ids: tuple[str, ...]
    horizon: float
    stop_loss: float
    take_profit: float
    weights: tuple[float, ...] = ()  # weight of each of `agents` at decision time
    opponent_proposal_ids: tuple[str, ...] = ()  # consumed too, traded nothing


@dataclass(frozen=True, slots=True)
class Order:
    client_order_id: str
    decision_id: str
    asset: str
    side: Side
    qty: float
    reference_price: float
    purpose: str  # "open" or "close"
    timestamp: float


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """The broker's word on an order: how much is filled so far, at what average price."""

    client_order_id: str
    status: OrderStatus
    filled_qty: float = 0.0
    avg_price: float = 0.0
    fee: float = 0.0
    reason: str = ""
    broker_order_id: str = ""


@dataclass(slots=True)
class Position:
    """An open collective position. Mutable: partial fills and marks change it."""

    asset: str
    direction: Direction
    qty: float  # > 0; the sign is in direction
    entry_price: float
    entry_fee: float
    opened_at: float
    decision_id: str
    agents: tuple[str, ...]
    opponents: tuple[str, ...]
    weights: tuple[float, ...]
    horizon: float
    stop_loss: float
    take_profit: float
    mark: float = 0.0
    exits: int = 0  # closing orders sent so far (each has its own client order id)
    exit_base_qty: float = 0.0  # the quantity when the latest closing order was sent

    def unrealized(self, mark: float | None = None) -> float:
        price = self.mark if mark is None else mark
        return self.direction.sign * (price - self.entry_price) * self.qty - self.entry_fee


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A closed collective position with its realized, net-of-fees P&L."""

    decision_id: str
    asset: str
    direction: Direction
    qty: float
    entry_price: float
    exit_price: float
    fees: float
    pnl: float
    opened_at: float
    closed_at: float
    reason: str
    agents: tuple[str, ...]
    opponents: tuple[str, ...]
    weights: tuple[float, ...]
