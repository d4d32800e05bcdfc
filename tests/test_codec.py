import contextlib
import json
import math

import pytest

from rawe_cli.bus import codec
from rawe_cli.errors import CodecError
from rawe_cli.models import ArbitrageSignal, Bar, Direction, NarrativeEvent, Proposal, SignalType

NOW = 1_767_225_600.0


def proposal(**kw) -> Proposal:
    base = dict(id="p-1", agent="The Balanced Arbitrator", asset="AAPL",
                direction=Direction.LONG, size=0.05, expected_profit=0.012, risk_score=0.3,
                narrative_id="n-1", signal_type="narrative_leads", timestamp=NOW,
                confidence=0.8, horizon=300.0, stop_loss=0.02, take_profit=0.04)
    base.update(kw)
    return Proposal(**base)


def fields_of(obj: dict) -> dict[str, str]:
    return {"data": json.dumps(obj)}


def test_proposal_round_trip():
    p = proposal(direction=Direction.SHORT, size=0.123456)
    assert codec.decode_proposal(codec.encode_proposal(p), now=NOW) == p


def test_round_trip_through_bytes_fields():
    p = proposal()
    raw = {k.encode(): v.encode() for k, v in codec.encode_proposal(p).items()}
    assert codec.decode_proposal(raw) == p


def test_minimal_wire_proposal_gets_documented_defaults():
    p = codec.decode_proposal(fields_of({"id": "x", "agent": "a", "asset": "AAPL",
                                         "direction": "short", "size": 0.1,
                                         "timestamp": NOW}), now=NOW)
    assert p.direction is Direction.SHORT
    assert (p.expected_profit, p.risk_score, p.signal_type, p.narrative_id) == (
        0.0, 0.5, "manual", "")
    assert (p.horizon, p.stop_loss, p.take_profit, p.confidence) == (300.0, 0.02, 0.04, 1.0)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("agent"), "missing field 'agent'"),
        (lambda d: d.pop("direction"), "missing field 'direction'"),
        (lambda d: d.update(direction="up"), "field 'direction' must be 'long' or 'short'"),
        (lambda d: d.update(size=-0.1), "field 'size' must be > 0"),
        (lambda d: d.update(size=0), "field 'size' must be > 0"),
        (lambda d: d.update(size=3), "field 'size' must be <= 1"),
        (lambda d: d.update(size="big"), "field 'size' must be a number"),
        (lambda d: d.update(size=True), "field 'size' must be a number"),
        (lambda d: d.update(timestamp=NOW + 3600), "in the future"),
        (lambda d: d.update(risk_score=2), "field 'risk_score' must be <= 1"),
        (lambda d: d.update(id=""), "field 'id' must be a non-empty string"),
        (lambda d: d.update(id="x" * 200), "longer than"),
        (lambda d: d.update(v=99), "unsupported schema version"),
    ],
)
def test_invalid_proposals_say_why(mutate, reason):
    d = codec.proposal_to_dict(proposal())
    mutate(d)
    with pytest.raises(CodecError, match=reason.replace("(", r"\(")):
        codec.decode_proposal(fields_of(d), now=NOW)


def test_fast_path_agrees_with_the_checked_path():
    """The one-pass decoder accepts only what the field-by-field one accepts, and builds
    the same proposal; on anything else it steps aside."""
    import random

    rng = random.Random(3)
    odd = [None, "", "x" * 101, "long", "short", "up", True, False, 0, 1, 2, -1, 0.0, 1.0,
           1.5, -0.5, 1e308, math.inf, -math.inf, math.nan, NOW + 3600, [], {}, "0.5"]
    base = codec.proposal_to_dict(proposal())
    fast_hits = 0
    for _ in range(4000):
        d = dict(base)
        for key in rng.sample(sorted(base), rng.randint(0, 3)):
            if rng.random() < 0.2:
                d.pop(key)
            else:
                d[key] = rng.choice(odd)
        try:
            checked = codec._proposal_checked(d, NOW)
        except CodecError:
            checked = None
        fast = codec._proposal_fast(d, NOW)
        if fast is not None:
            fast_hits += 1
            assert fast == checked, d
            assert all(type(getattr(fast, f)) is type(getattr(checked, f))
                       for f in ("size", "timestamp", "horizon", "id"))
        got = None
        with contextlib.suppress(CodecError):
            got = codec.proposal_from_dict(d, NOW)
        assert got == checked
    assert 100 < fast_hits < 4000


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(bad):
    text = json.dumps(codec.proposal_to_dict(proposal())).replace('"size": 0.05', f'"size": {bad}')
    with pytest.raises(CodecError, match="finite"):
        codec.decode_proposal({"data": text}, now=NOW)


@pytest.mark.parametrize("raw", [None, "{not json", "[1,2]", "\"text\""])
def test_bad_json_is_refused(raw):
    fields = {} if raw is None else {"data": raw}
    with pytest.raises(CodecError):
        codec.decode_proposal(fields, now=NOW)


def test_signature_required_and_checked_when_a_secret_is_set():
    p = proposal()
    signed = codec.encode_proposal(p, secret="s3cret")
    assert codec.decode_proposal(signed, now=NOW, secret="s3cret") == p
    with pytest.raises(CodecError, match="unsigned"):
        codec.decode_proposal(codec.encode_proposal(p), now=NOW, secret="s3cret")
    forged = dict(signed, data=signed["data"].replace("0.05", "0.9"))
    with pytest.raises(CodecError, match="bad signature"):
        codec.decode_proposal(forged, now=NOW, secret="s3cret")
    with pytest.raises(CodecError, match="bad signature"):
        codec.decode_proposal(codec.encode_proposal(p, secret="other"), now=NOW, secret="s3cret")


def test_signal_round_trip():
    s = ArbitrageSignal(NOW, "n-1", "AAPL", SignalType.NARRATIVE_EXHAUSTION, 0.8, 0.02, 0.4,
                        {"direction": "short", "intensity": 0.3})
    again = ArbitrageSignal.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s and again.direction is Direction.SHORT


def test_market_messages_round_trip_and_validate():
    bar = Bar(NOW, "AAPL", 1.0, 2.0, 0.5, 1.5, 100.0)
    event = NarrativeEvent(NOW, "n-1", ("AAPL", "MSFT"), 0.7, -0.4, "headline", "src")
    assert codec.decode_market(codec.encode_market(bar)) == bar
    assert codec.decode_market(codec.encode_market(event)) == event
    with pytest.raises(CodecError, match="close"):
        codec.decode_market({"data": json.dumps({"kind": "bar", "timestamp": 1, "symbol": "A",
                                                 "open": 1, "high": 1, "low": 1,
                                                 "close": -1})})
    with pytest.raises(CodecError, match="sentiment"):
        codec.decode_market({"data": json.dumps({"kind": "narrative", "timestamp": 1,
                                                 "narrative_id": "n", "symbols": ["A"],
                                                 "intensity": 1, "sentiment": 3})})
    assert math.isfinite(bar.close)
