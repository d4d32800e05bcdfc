"""Model <-> wire. A bus message is a stream entry with a field ``data`` (compact JSON, with
a schema version ``v``) and, when a shared secret is configured, a field ``sig``: the hex
HMAC-SHA256 of the exact ``data`` bytes. Every decode failure is a CodecError whose message
is the reason written to the dead-letter stream.

Decoding is one compiled step (msgspec): the bytes of ``data`` become the `Proposal`, `Bar`
or `NarrativeEvent` Struct itself, checked as they are read: strict UTF-8, required fields,
types, the ranges annotated in models.py, the schema version. Unknown fields are ignored.
What msgspec cannot know is checked after it: the clock tolerance and a proposal's required
`timestamp` (a field with a default in the Struct, for its field order). Only a message
that is refused is looked at again (`_reason`), to say why in the words the dead-letter
stream has always used ("field 'size' must be <= 1, got 3").

State (ledger entries, positions, agent records) is encoded with msgspec too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import typing
from typing import Annotated, Any

import msgspec

from rawe_cli.collective import LedgerEntry
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.errors import CodecError
from rawe_cli.models import (
    MAX_ID_LENGTH,
    SCHEMA_VERSION,
    Bar,
    Decision,
    Direction,
    NarrativeEvent,
    OrderStatus,
    Position,
    Proposal,
)

__all__ = ["MAX_FUTURE_SECONDS", "MAX_ID_LENGTH", "SCHEMA_VERSION"]

# A proposal or market message stamped further ahead of the reader's clock is refused (the
# settings' clock_tolerance; this is its default).
MAX_FUTURE_SECONDS = 60.0
_UNSET = msgspec.UNSET
_PROPOSAL = msgspec.json.Decoder(Proposal)
_MARKET = msgspec.json.Decoder(Bar | NarrativeEvent)
_SORTED = msgspec.json.Encoder(order="sorted")  # compact, keys sorted
_ANY = msgspec.json.Decoder()
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeEncodeError)


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False)


def sign(data: str, secret: str) -> str:
    return hmac.new(secret.encode(), data.encode(), hashlib.sha256).hexdigest()


# -- why a message was refused ----------------------------------------------------------------

_RANGE = re.compile(r"Expected `(?:float|int)` (>=|>|<=|<) (\S+)")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")


def _valid_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _named(key: str, value: Any, counts: frozenset[str]) -> str | None:
    """The reason for a bad value of a field that has words of its own."""
    if key == "kind":
        return f"unknown market message kind {value!r}"
    if key == "symbols":
        return "field 'symbols' must be a non-empty list of strings"
    if value is None:
        return None
    if key == "direction":
        return f"field 'direction' must be 'long' or 'short', got {value!r}"
    if key in counts:
        return f"field '{key}' must be an integer >= 0, got {value!r}"
    return None


def _field_types(target: Any) -> dict[str, Any]:
    """Wire name -> the plain type (str, float, ...) of the fields of a Struct (or union)."""
    out: dict[str, Any] = {}
    for struct in typing.get_args(target) or (target,):
        for f in msgspec.structs.fields(struct):
            t = f.type
            if typing.get_origin(t) is Annotated:
                t = typing.get_args(t)[0]
            out.setdefault(f.encode_name, t)
    return out


def _reason(exc: BaseException, raw: str | bytes, target: Any, what: str = "data",
            counts: frozenset[str] = frozenset()) -> str:
    """The dead-letter reason for a message msgspec refused (`exc`), in the words of the
    field-by-field checks it replaced. Slow on purpose (it reads the message again with the
    standard library, which also takes NaN, Infinity and lone surrogates): only refused
    messages come here."""
    if isinstance(exc, UnicodeError) or "Invalid UTF-8" in str(exc):
        return f"field '{what}' is not UTF-8" if what == "data" else f"{what} is not UTF-8"
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        return f"bad JSON: {err}"
    if not isinstance(obj, dict):
        return f"{what} must be a JSON object"
    version = obj.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or type(version) is not int:
        return f"unsupported schema version {version!r} (this reader: {SCHEMA_VERSION})"
    if not isinstance(exc, msgspec.ValidationError):
        # JSON only the standard library reads: NaN, +-Infinity or an escaped lone surrogate
        types = _field_types(target)
        for key, value in obj.items():
            for v in (value if isinstance(value, list) else (value,)):
                nonfinite = isinstance(v, float) and not math.isfinite(v)
                if not nonfinite and not (isinstance(v, str) and not _valid_text(v)):
                    continue
                named = _named(key, value, counts)
                if named:
                    return named
                expected = types.get(key)
                if expected is str:
                    return (f"field '{key}' must be a non-empty string" if nonfinite
                            else f"field '{key}' is not UTF-8")
                if expected is float and not nonfinite:
                    return f"field '{key}' must be a number, got {v!r}"
                return (f"field '{key}' must be finite, got {v!r}" if nonfinite
                        else f"field '{key}' is not UTF-8")
        return f"bad JSON: {exc}"
    text = str(exc)
    message, _, path = text.partition(" - at `$")
    missing = _MISSING.match(message)
    if missing:
        return _named(missing.group(1), None, counts) or f"missing field '{missing.group(1)}'"
    where = path.strip("`").lstrip(".")
    key = re.split(r"[.\[]", where, maxsplit=1)[0]
    if not key:
        return f"{what} is invalid: {message}"
    value = obj.get(key)
    named = _named(key, value, counts)
    if named:
        return named
    if value is None:
        return f"missing field '{key}'"
    if isinstance(value, dict) and where != key:  # inside a map of numbers (regime scores)
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                return f"field '{k}' must be a number, got {v!r}"
            if not v > 0 or not math.isfinite(v):
                key, value = k, v
                break
    if message == "Number out of range":
        if _field_types(target).get(key) is str:
            return f"field '{key}' must be a non-empty string"
        if isinstance(value, float):
            return f"field '{key}' must be finite, got {value!r}"
        return f"field '{key}' is out of range"
    if message.startswith("Expected `str`"):
        if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
            return f"field '{key}' is longer than {MAX_ID_LENGTH} characters"
        return f"field '{key}' must be a non-empty string"
    if message.startswith("Expected `float`, got") or isinstance(value, bool) or not isinstance(
            value, int | float):
        return f"field '{key}' must be a number, got {value!r}"
    bound = _RANGE.match(message)
    if bound:
        op, limit = bound.groups()
        return f"field '{key}' must be {op} {float(limit):g}, got {float(value):g}"
    return f"field '{key}' is invalid: {message}"


# -- proposals ------------------------------------------------------------------------------


def proposal_to_dict(p: Proposal) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "id": p.id,
        "agent": p.agent,
        "asset": p.asset,
        "direction": p.direction.value,
        "size": p.size,
        "expected_profit": p.expected_profit,
        "risk_score": p.risk_score,
        "narrative_id": p.narrative_id,
        "signal_type": p.signal_type,
        "timestamp": p.timestamp,
        "confidence": p.confidence,
        "horizon": p.horizon,
        "stop_loss": p.stop_loss,
        "take_profit": p.take_profit,
    }


def encode_proposal(p: Proposal, secret: str | None = None) -> dict[str, str]:
    """The stream fields of a proposal."""
    data = _dumps(proposal_to_dict(p))
    fields = {"data": data}
    if secret:
        fields["sig"] = sign(data, secret)
    return fields


def _field(fields: dict[Any, Any], name: str) -> str | bytes | None:
    """A field as the bus gave it: text (the engine's client), or bytes."""
    value = fields.get(name)
    if value is None:
        value = fields.get(name.encode())
    return value


def _text_field(fields: dict[Any, Any], name: str) -> str | None:
    """A field as text, decoded strictly: anything that is not UTF-8 is refused (the bus
    keeps such bytes as U+DC80..U+DCFF, never a silent U+FFFD)."""
    value = _field(fields, name)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise CodecError(f"field '{name}' is not UTF-8") from None
    if value is not None and not value.isascii() and not _valid_text(value):
        raise CodecError(f"field '{name}' is not UTF-8")
    return value


def proposal_from_json(data: str | bytes, now: float | None = None,
                       max_ahead: float = MAX_FUTURE_SECONDS) -> Proposal:
    """A proposal from its JSON (the `data` field), checked; raises CodecError."""
    try:
        p = _PROPOSAL.decode(data)
    except _DECODE_ERRORS as exc:
        raise CodecError(_reason(exc, data, Proposal)) from None
    ts = p.timestamp
    if ts is _UNSET:
        raise CodecError("missing field 'timestamp'")
    if now is not None and ts > now + max_ahead:
        raise CodecError(f"timestamp is {ts - now:.0f} s in the future "
                         f"(at most {max_ahead:g} s allowed: clock_tolerance)")
    return p


def decode_proposal(fields: dict[Any, Any], now: float | None = None,
                    secret: str | None = None,
                    max_ahead: float = MAX_FUTURE_SECONDS) -> Proposal:
    """A proposal from stream fields; raises CodecError with the reason.

    With a secret, the entry must carry a valid ``sig``.
    """
    if secret:
        data = _text_field(fields, "data")
        sig = _text_field(fields, "sig")
        if not sig:
            raise CodecError("unsigned proposal (a shared secret is configured)")
        expected = sign(data or "", secret).encode()
        if not hmac.compare_digest(sig.encode("utf-8", "replace"), expected):
            raise CodecError("bad signature")
    else:
        data = _field(fields, "data")
    if data is None:
        raise CodecError("missing field 'data'")
    return proposal_from_json(data, now, max_ahead)


# -- market data (bars and narrative events on the market stream) --------------------------


def encode_market(item: Bar | NarrativeEvent) -> dict[str, str]:
    if isinstance(item, Bar):
        body: dict[str, Any] = {"kind": "bar", "timestamp": item.timestamp,
                                "symbol": item.symbol, "open": item.open, "high": item.high,
                                "low": item.low, "close": item.close, "volume": item.volume}
    else:
        body = {"kind": "narrative", "timestamp": item.timestamp,
                "narrative_id": item.narrative_id, "symbols": list(item.symbols),
                "intensity": item.intensity, "sentiment": item.sentiment,
                "headline": item.headline, "source": item.source}
    body["v"] = SCHEMA_VERSION
    return {"data": _dumps(body)}


def decode_market(fields: dict[Any, Any], now: float | None = None,
                  max_ahead: float = MAX_FUTURE_SECONDS) -> Bar | NarrativeEvent:
    """A bar or narrative event from stream fields; raises CodecError with the reason.

    With `now` (the reader's wall clock), a message stamped more than `max_ahead` seconds
    ahead is refused: one bar stamped in the future (or in milliseconds) must not move the
    engine's clock, which would make every valid proposal look expired.
    """
    data = _field(fields, "data")
    if data is None:
        raise CodecError("missing field 'data'")
    try:
        item = _MARKET.decode(data)
    except _DECODE_ERRORS as exc:
        raise CodecError(_reason(exc, data, Bar | NarrativeEvent)) from None
    if now is not None and item.timestamp > now + max_ahead:
        raise CodecError(f"timestamp is {item.timestamp - now:.0f} s ahead of the reader's "
                         f"clock (at most {max_ahead:g} s allowed: clock_tolerance)")
    return item


# -- agent records, ledger and positions (state in Redis) -----------------------------------

_Count = Annotated[int, msgspec.Meta(ge=0)]
_Score = Annotated[float, msgspec.Meta(gt=0)]
_COUNTS = frozenset(("wins", "losses", "votes"))


class _AgentJson(msgspec.Struct, gc=False):
    """An agent record as stored in the agents hash (AgentRecord.to_dict)."""

    name: Annotated[str, msgspec.Meta(min_length=1)]
    personality: str | msgspec.UnsetType = msgspec.UNSET
    weight: _Score = 1.0
    wins: _Count = 0
    losses: _Count = 0
    pnl: float = 0.0
    votes: _Count = 0
    updated: float = 0.0
    score: _Score = 1.0
    regime_scores: dict[str, _Score] | None = None


_AGENT = msgspec.json.Decoder(_AgentJson)


def agent_to_json(rec: AgentRecord) -> str:
    return _SORTED.encode(rec.to_dict()).decode()


def agent_from_json(name: str, raw: str | bytes) -> AgentRecord:
    """An agent record from the agents hash, checked: one bad record (not JSON, no name,
    negative wins, a weight that is not a positive number) raises CodecError with the
    reason, so the reader can skip it instead of dying on it."""
    try:
        d = _AGENT.decode(raw)
    except _DECODE_ERRORS as exc:
        reason = _reason(exc, raw, _AgentJson, "record", _COUNTS)
        if reason == "field 'name' must be a non-empty string":
            reason = "missing field 'name'"
        elif reason.startswith("field 'personality'"):
            reason = "field 'personality' must be a string"
        elif reason.startswith("field 'regime_scores' must be"):
            reason = "field 'regime_scores' must be an object"
        raise CodecError(reason) from None
    if d.name != name:
        raise CodecError(f"field 'name' is {d.name!r}, but the record is stored as {name!r}")
    return AgentRecord(
        name=name, personality=name if d.personality is _UNSET else d.personality,
        weight=d.weight, wins=d.wins, losses=d.losses, pnl=d.pnl, votes=d.votes,
        updated=d.updated, score=d.score, regime_scores=dict(d.regime_scores or {}),
    )


class _LedgerJson(msgspec.Struct, gc=False):
    """LedgerEntry.to_dict as a Struct, its fields in sorted order: encoded without a dict
    to build and sort per decision (the engine writes one per quorum)."""

    agents: tuple[str, ...]
    asset: str
    avg_price: float
    closed_at: float | None
    direction: str
    exit_price: float | None
    exit_reason: str
    fee: float
    fence: int
    filled_qty: float
    horizon: float
    id: str
    long_weight: float
    opponent_proposal_ids: tuple[str, ...]
    opponents: tuple[str, ...]
    order_status: str
    pnl: float | None
    proposal_ids: tuple[str, ...]
    reason: str
    short_weight: float
    size: float
    status: str
    stop_loss: float
    take_profit: float
    threshold: float
    timestamp: float
    weights: tuple[float, ...]


_LEDGER = msgspec.json.Encoder()


def ledger_to_json(entry: LedgerEntry) -> str:
    """The ledger entry as stored: the JSON of `entry.to_dict()`, keys sorted, compact."""
    d = entry.decision
    return _LEDGER.encode(_LedgerJson(  # (msgspec writes a StrEnum as its value)
        d.agents, d.asset, entry.avg_price, entry.closed_at, d.direction,
        entry.exit_price, entry.exit_reason, entry.fee, entry.fence, entry.filled_qty,
        d.horizon, d.id, d.long_weight, d.opponent_proposal_ids, d.opponents,
        entry.order_status, entry.pnl, d.proposal_ids, entry.reason, d.short_weight,
        d.size, entry.status, d.stop_loss, d.take_profit, d.threshold, d.timestamp,
        d.weights)).decode()


def ledger_from_json(raw: str | bytes) -> LedgerEntry:
    try:
        d = _ANY.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None
    decision = Decision(
        id=d["id"], timestamp=d["timestamp"], asset=d["asset"],
        direction=Direction(d["direction"]), size=d["size"], long_weight=d["long_weight"],
        short_weight=d["short_weight"], threshold=d["threshold"], agents=tuple(d["agents"]),
        opponents=tuple(d["opponents"]), proposal_ids=tuple(d["proposal_ids"]),
        horizon=d["horizon"], stop_loss=d["stop_loss"], take_profit=d["take_profit"],
        weights=tuple(d.get("weights") or ()),
        opponent_proposal_ids=tuple(d.get("opponent_proposal_ids") or ()),
    )
    return LedgerEntry(
        decision=decision, status=d["status"], order_status=OrderStatus(d["order_status"]),
        filled_qty=d["filled_qty"], avg_price=d["avg_price"], fee=d["fee"],
        reason=d["reason"], exit_reason=d["exit_reason"], exit_price=d["exit_price"],
        closed_at=d["closed_at"], pnl=d["pnl"], fence=d.get("fence", 0),
    )


def position_to_json(p: Position) -> str:
    return _SORTED.encode({
        "asset": p.asset, "direction": p.direction.value, "qty": p.qty,
        "entry_price": p.entry_price, "entry_fee": p.entry_fee, "opened_at": p.opened_at,
        "decision_id": p.decision_id, "agents": p.agents, "opponents": p.opponents,
        "weights": p.weights, "horizon": p.horizon, "stop_loss": p.stop_loss,
        "take_profit": p.take_profit, "mark": p.mark, "exits": p.exits,
        "exit_base_qty": p.exit_base_qty,
    }).decode()


def position_from_json(raw: str | bytes) -> Position:
    d = _ANY.decode(raw)
    return Position(
        asset=d["asset"], direction=Direction(d["direction"]), qty=d["qty"],
        entry_price=d["entry_price"], entry_fee=d["entry_fee"], opened_at=d["opened_at"],
        decision_id=d["decision_id"], agents=tuple(d["agents"]),
        opponents=tuple(d["opponents"]), weights=tuple(d["weights"]), horizon=d["horizon"],
        stop_loss=d["stop_loss"], take_profit=d["take_profit"], mark=d["mark"],
        exits=int(d.get("exits", 0)), exit_base_qty=float(d.get("exit_base_qty", 0.0)),
    )
