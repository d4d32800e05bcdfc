"""Model <-> wire. A bus message is a stream entry with a field ``data`` (compact JSON, with
a schema version ``v``) and, when a shared secret is configured, a field ``sig``: the hex
HMAC-SHA256 of the exact ``data`` bytes. Every decode failure is a CodecError whose message
is the reason written to the dead-letter stream.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import Any

from rawe_cli.collective import LedgerEntry
from rawe_cli.core.weighting import AgentRecord
from rawe_cli.errors import CodecError
from rawe_cli.models import (
    Bar,
    Decision,
    Direction,
    NarrativeEvent,
    OrderStatus,
    Position,
    Proposal,
)

SCHEMA_VERSION = 1
# A proposal or market message stamped further ahead of the reader's clock is refused (the
# settings' clock_tolerance; this is its default).
MAX_FUTURE_SECONDS = 60.0
MAX_ID_LENGTH = 100


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False)


def sign(data: str, secret: str) -> str:
    return hmac.new(secret.encode(), data.encode(), hashlib.sha256).hexdigest()


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


def _text(d: dict[str, Any], key: str, default: str | None = None) -> str:
    value = d.get(key, default)
    if value is None:
        raise CodecError(f"missing field '{key}'")
    if not isinstance(value, str) or (not value and default is None):
        raise CodecError(f"field '{key}' must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise CodecError(f"field '{key}' is longer than {MAX_ID_LENGTH} characters")
    if not value.isascii():
        _check_unicode(value, f"field '{key}'")
    return value


def _check_unicode(text: str, what: str) -> None:
    """Refuse text that is not valid Unicode: bytes that were not UTF-8 (kept by the bus as
    U+DC80..U+DCFF) or a lone surrogate written as a JSON escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CodecError(f"{what} is not UTF-8") from None


def _number(d: dict[str, Any], key: str, default: float | None = None, *,
            lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> float:
    value = d.get(key, default)
    if value is None:
        raise CodecError(f"missing field '{key}'")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"field '{key}' must be a number, got {value!r}")
    try:
        x = float(value)
    except OverflowError:  # a JSON integer too large for a float
        raise CodecError(f"field '{key}' is out of range") from None
    if not math.isfinite(x):
        raise CodecError(f"field '{key}' must be finite, got {value!r}")
    if lo is not None and (x <= lo if lo_open else x < lo):
        raise CodecError(f"field '{key}' must be {'>' if lo_open else '>='} {lo:g}, got {x:g}")
    if hi is not None and x > hi:
        raise CodecError(f"field '{key}' must be <= {hi:g}, got {x:g}")
    return x


def _parse_json(raw: str | bytes | None) -> dict[str, Any]:
    if raw is None:
        raise CodecError("missing field 'data'")
    try:
        # The default decoder already reads NaN and +-Infinity as floats (refused later as
        # not finite); without keyword arguments json.loads reuses it instead of building
        # a decoder per message.
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CodecError(f"bad JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CodecError("data must be a JSON object")
    version = obj.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise CodecError(f"unsupported schema version {version!r} (this reader: "
                         f"{SCHEMA_VERSION})")
    return obj


_DIRECTIONS = {"long": Direction.LONG, "short": Direction.SHORT}
_INF = math.inf


def _proposal_fast(d: dict[str, Any], now: float | None,
                   max_ahead: float = MAX_FUTURE_SECONDS) -> Proposal | None:
    """The common case in one pass: every field present or defaulted, strings of type str,
    numbers of type float, all within bounds. None for anything else, which the checked path
    then accepts (ints, say) or refuses with its exact reason. Accepts only what the checked
    path accepts, and builds the same Proposal."""
    g = d.get
    direction = _DIRECTIONS.get(g("direction")) if type(g("direction")) is str else None
    ident, agent, asset = g("id"), g("agent"), g("asset")
    narrative, signal = g("narrative_id", ""), g("signal_type", "manual")
    ts, size, profit = g("timestamp"), g("size"), g("expected_profit", 0.0)
    risk, conf, horizon = g("risk_score", 0.5), g("confidence", 1.0), g("horizon", 300.0)
    stop, take = g("stop_loss", 0.02), g("take_profit", 0.04)
    if (direction is None
            or type(ident) is not str or type(agent) is not str or type(asset) is not str
            or type(narrative) is not str or type(signal) is not str
            or not (0 < len(ident) <= MAX_ID_LENGTH and 0 < len(agent) <= MAX_ID_LENGTH
                    and 0 < len(asset) <= MAX_ID_LENGTH and len(narrative) <= MAX_ID_LENGTH
                    and len(signal) <= MAX_ID_LENGTH)
            or not (ident.isascii() and agent.isascii() and asset.isascii()
                    and narrative.isascii() and signal.isascii())
            or type(ts) is not float or type(size) is not float or type(profit) is not float
            or type(risk) is not float or type(conf) is not float
            or type(horizon) is not float or type(stop) is not float
            or type(take) is not float
            or not (0.0 <= ts < _INF and 0.0 < size <= 1.0 and -_INF < profit < _INF
                    and 0.0 <= risk <= 1.0 and 0.0 <= conf <= 1.0 and 0.0 < horizon < _INF
                    and 0.0 < stop <= 1.0 and 0.0 < take < _INF)
            or (now is not None and ts > now + max_ahead)):
        return None
    return Proposal(ident, agent, asset, direction, size, profit, risk, narrative, signal, ts,
                    conf, horizon, stop, take)


def proposal_from_dict(d: dict[str, Any], now: float | None = None,
                       max_ahead: float = MAX_FUTURE_SECONDS) -> Proposal:
    fast = _proposal_fast(d, now, max_ahead)
    return fast if fast is not None else _proposal_checked(d, now, max_ahead)


def _proposal_checked(d: dict[str, Any], now: float | None,
                      max_ahead: float = MAX_FUTURE_SECONDS) -> Proposal:
    """Field by field, raising CodecError with the first reason found."""
    direction = d.get("direction")
    if direction not in ("long", "short"):
        if direction is None:
            raise CodecError("missing field 'direction'")
        raise CodecError(f"field 'direction' must be 'long' or 'short', got {direction!r}")
    timestamp = _number(d, "timestamp", lo=0)
    if now is not None and timestamp > now + max_ahead:
        raise CodecError(f"timestamp is {timestamp - now:.0f} s in the future "
                         f"(at most {max_ahead:g} s allowed: clock_tolerance)")
    return Proposal(
        id=_text(d, "id"),
        agent=_text(d, "agent"),
        asset=_text(d, "asset"),
        direction=Direction(direction),
        size=_number(d, "size", lo=0, lo_open=True, hi=1),
        expected_profit=_number(d, "expected_profit", 0.0),
        risk_score=_number(d, "risk_score", 0.5, lo=0, hi=1),
        narrative_id=_text(d, "narrative_id", ""),
        signal_type=_text(d, "signal_type", "manual"),
        timestamp=timestamp,
        confidence=_number(d, "confidence", 1.0, lo=0, hi=1),
        horizon=_number(d, "horizon", 300.0, lo=0, lo_open=True),
        stop_loss=_number(d, "stop_loss", 0.02, lo=0, lo_open=True, hi=1),
        take_profit=_number(d, "take_profit", 0.04, lo=0, lo_open=True),
    )


def _field(fields: dict[Any, Any], name: str) -> str | None:
    """A field as text, decoded strictly: anything that is not UTF-8 is refused (the bus
    keeps such bytes as U+DC80..U+DCFF, never a silent U+FFFD)."""
    value = fields.get(name, fields.get(name.encode()))
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise CodecError(f"field '{name}' is not UTF-8") from None
    if value is not None and not value.isascii():
        _check_unicode(value, f"field '{name}'")
    return value


def decode_proposal(fields: dict[Any, Any], now: float | None = None,
                    secret: str | None = None,
                    max_ahead: float = MAX_FUTURE_SECONDS) -> Proposal:
    """A proposal from stream fields; raises CodecError with the reason.

    With a secret, the entry must carry a valid ``sig``.
    """
    data = _field(fields, "data")
    if secret:
        sig = _field(fields, "sig")
        if not sig:
            raise CodecError("unsigned proposal (a shared secret is configured)")
        expected = sign(data or "", secret).encode()
        if not hmac.compare_digest(sig.encode("utf-8", "replace"), expected):
            raise CodecError("bad signature")
    return proposal_from_dict(_parse_json(data), now, max_ahead)


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
    d = _parse_json(_field(fields, "data"))
    kind = d.get("kind")
    if now is not None:
        ts = _number(d, "timestamp", lo=0)
        if ts > now + max_ahead:
            raise CodecError(f"timestamp is {ts - now:.0f} s ahead of the reader's clock "
                             f"(at most {max_ahead:g} s allowed: clock_tolerance)")
    if kind == "bar":
        return Bar(_number(d, "timestamp", lo=0), _text(d, "symbol"),
                   _number(d, "open", lo=0, lo_open=True), _number(d, "high", lo=0, lo_open=True),
                   _number(d, "low", lo=0, lo_open=True), _number(d, "close", lo=0, lo_open=True),
                   _number(d, "volume", 0.0, lo=0))
    if kind == "narrative":
        symbols = d.get("symbols")
        if not isinstance(symbols, list) or not symbols or not all(
                isinstance(s, str) and s for s in symbols):
            raise CodecError("field 'symbols' must be a non-empty list of strings")
        return NarrativeEvent(_number(d, "timestamp", lo=0), _text(d, "narrative_id"),
                              tuple(symbols), _number(d, "intensity", lo=0),
                              _number(d, "sentiment", lo=-1, hi=1),
                              str(d.get("headline") or ""), str(d.get("source") or ""))
    raise CodecError(f"unknown market message kind {kind!r}")


# -- agent records, ledger and positions (state in Redis) -----------------------------------


def _count(d: dict[str, Any], key: str) -> int:
    value = d.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CodecError(f"field '{key}' must be an integer >= 0, got {value!r}")
    return value


def agent_from_json(name: str, raw: str | bytes) -> AgentRecord:
    """An agent record from the agents hash, checked: one bad record (not JSON, no name,
    negative wins, a weight that is not a positive number) raises CodecError with the
    reason, so the reader can skip it instead of dying on it."""
    if isinstance(raw, str) and not raw.isascii():
        _check_unicode(raw, "record")
    try:
        d = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CodecError(f"bad JSON: {exc}") from None
    if not isinstance(d, dict):
        raise CodecError("record must be a JSON object")
    stored = d.get("name")
    if not isinstance(stored, str) or not stored:
        raise CodecError("missing field 'name'")
    if stored != name:
        raise CodecError(f"field 'name' is {stored!r}, but the record is stored as {name!r}")
    personality = d.get("personality", name)
    if not isinstance(personality, str):
        raise CodecError("field 'personality' must be a string")
    scores = d.get("regime_scores") or {}
    if not isinstance(scores, dict):
        raise CodecError("field 'regime_scores' must be an object")
    return AgentRecord(
        name=name, personality=personality,
        weight=_number(d, "weight", 1.0, lo=0, lo_open=True),
        wins=_count(d, "wins"), losses=_count(d, "losses"),
        pnl=_number(d, "pnl", 0.0), votes=_count(d, "votes"),
        updated=_number(d, "updated", 0.0),
        score=_number(d, "score", 1.0, lo=0, lo_open=True),
        regime_scores={str(k): _number(scores, k, lo=0, lo_open=True) for k in scores},
    )



def ledger_to_json(entry: LedgerEntry) -> str:
    return _dumps(entry.to_dict())


def ledger_from_json(raw: str | bytes) -> LedgerEntry:
    d = json.loads(raw)
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
    return _dumps({
        "asset": p.asset, "direction": p.direction.value, "qty": p.qty,
        "entry_price": p.entry_price, "entry_fee": p.entry_fee, "opened_at": p.opened_at,
        "decision_id": p.decision_id, "agents": list(p.agents), "opponents": list(p.opponents),
        "weights": list(p.weights), "horizon": p.horizon, "stop_loss": p.stop_loss,
        "take_profit": p.take_profit, "mark": p.mark, "exits": p.exits,
        "exit_base_qty": p.exit_base_qty,
    })


def position_from_json(raw: str | bytes) -> Position:
    d = json.loads(raw)
    return Position(
        asset=d["asset"], direction=Direction(d["direction"]), qty=d["qty"],
        entry_price=d["entry_price"], entry_fee=d["entry_fee"], opened_at=d["opened_at"],
        decision_id=d["decision_id"], agents=tuple(d["agents"]),
        opponents=tuple(d["opponents"]), weights=tuple(d["weights"]), horizon=d["horizon"],
        stop_loss=d["stop_loss"], take_profit=d["take_profit"], mark=d["mark"],
        exits=int(d.get("exits", 0)), exit_base_qty=float(d.get("exit_base_qty", 0.0)),
    )
