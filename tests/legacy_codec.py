"""The field-by-field checks the bus codec used before msgspec (commit f8de544), kept as
an oracle: tests/test_codec.py checks that the compiled decoder accepts exactly what these
accepted, builds the same values and gives the same reasons."""

from __future__ import annotations

import json
import math
from typing import Any

from rawe_cli.errors import CodecError
from rawe_cli.models import Bar, Direction, NarrativeEvent, Proposal

SCHEMA_VERSION = 1
MAX_FUTURE_SECONDS = 60.0
MAX_ID_LENGTH = 100


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


def decode_market_old(fields: dict[Any, Any], now: float | None = None,
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


def decode_proposal_old(fields: dict[Any, Any], now: float | None = None,
                        max_ahead: float = MAX_FUTURE_SECONDS) -> Proposal:
    return _proposal_checked(_parse_json(_field(fields, "data")), now, max_ahead)
