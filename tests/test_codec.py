import json
import math
from pathlib import Path

import pytest

from rawe_cli.bus import codec
from rawe_cli.errors import CodecError
from rawe_cli.models import ArbitrageSignal, Bar, Direction, NarrativeEvent, Proposal, SignalType
from tests import legacy_codec as legacy

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


def _outcome(decode, fields, now=NOW):
    try:
        return decode(fields, now), None
    except CodecError as exc:
        return None, str(exc)


def test_compiled_decoder_agrees_with_the_field_by_field_checks():
    """The msgspec decoder accepts exactly what the hand-written checks it replaced accepted
    (tests/legacy_codec.py, the old code), builds the same proposal, and refuses a message
    with one fault for the same reason, word for word."""
    import random

    rng = random.Random(3)
    odd = [None, "", "x" * 101, "x" * 100, "long", "short", "up", "é", True, False, 0, 1, 2,
           -1, 0.0, 1.0, 1.5, -0.5, 1e308, 10 ** 400, math.inf, -math.inf, math.nan,
           NOW + 3600, [], {}, "0.5"]
    base = codec.proposal_to_dict(proposal())
    accepted = same_reason = 0
    for i in range(4000):
        d = dict(base)
        faults = rng.sample(sorted(base), 1 if i % 2 else rng.randint(0, 3))
        for key in faults:
            if rng.random() < 0.2:
                d.pop(key)
            else:
                d[key] = rng.choice(odd)
        if rng.random() < 0.1:  # ignored by both (NaN there is not: see below)
            d["unknown_field"] = rng.choice([v for v in odd if v not in (math.inf, -math.inf)
                                             and v == v])
        # the standard library writes NaN/Infinity (the old reader took them, then refused)
        fields = {"data": json.dumps(d)}
        old, old_reason = _outcome(legacy.decode_proposal_old, fields)
        new, new_reason = _outcome(codec.decode_proposal, fields)
        if "v" in d and type(d["v"]) is not int and d["v"] == 1:
            # true and 1.0 equal 1 in Python, so the old reader took them as version 1
            assert new_reason == f"unsupported schema version {d['v']!r} (this reader: 1)"
            continue
        assert (old is None) == (new is None), (d, old_reason, new_reason)
        if new is not None:
            accepted += 1
            assert new == old, d
            assert all(type(getattr(new, f)) is type(getattr(old, f))
                       for f in ("size", "timestamp", "horizon", "id", "direction"))
        elif len(faults) == 1:
            same_reason += 1
            assert new_reason == old_reason, d
    assert accepted > 500 and same_reason > 1000
    # The one difference: NaN and Infinity are not JSON; the old reader ignored them in a
    # field it did not know, the compiled one refuses the message
    d = {**base, "unknown_field": math.nan}
    assert _outcome(legacy.decode_proposal_old, {"data": json.dumps(d)})[0] is not None
    assert _outcome(codec.decode_proposal, {"data": json.dumps(d)})[1] == (
        "field 'unknown_field' must be finite, got nan")


def test_market_decoder_agrees_with_the_field_by_field_checks():
    import random

    rng = random.Random(5)
    bar = json.loads(codec.encode_market(Bar(NOW, "AAPL", 1.0, 2.0, 0.5, 1.5, 100.0))["data"])
    event = json.loads(codec.encode_market(NarrativeEvent(
        NOW, "n-1", ("AAPL", "MSFT"), 0.7, -0.4, "headline", "src"))["data"])
    odd = [None, "", "x" * 101, "bar", "narrative", "other", True, 0, 1, -1, 0.5, -2.0, 3,
           10 ** 400, math.nan, NOW + 3600, [], ["A"], [""], [1], {}]
    agreed = 0
    for i in range(3000):
        d = dict(bar if i % 2 else event)
        key = rng.choice(sorted(d))
        if key == "headline" or key == "source":
            continue  # the old reader took any value there (str(...)); a string now
        if rng.random() < 0.2:
            d.pop(key)
        else:
            d[key] = rng.choice(odd)
        if key == "v" and type(d.get("v")) is not int and d.get("v") == 1:
            continue  # true and 1.0 (see above)
        fields = {"data": json.dumps(d)}
        old, old_reason = _outcome(legacy.decode_market_old, fields)
        new, new_reason = _outcome(codec.decode_market, fields)
        assert (old is None) == (new is None), (d, old_reason, new_reason)
        assert new == old, d
        if key != "kind":  # another kind: several fields wrong at once
            assert new_reason == old_reason, d
        agreed += 1
    assert agreed > 2000


def test_every_wire_format_example_of_the_readme_decodes():
    """The README's "Wire format of a proposal": its redis-cli example, its required and
    optional fields with their documented defaults and bounds."""
    import re
    import time

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Wire format of a proposal", 1)[1].split("\n## ", 1)[0]
    now = float(int(time.time()))
    examples = re.findall(r"data \"(\{.*?\})\"", section)
    assert examples, "no XADD example found in the README's wire-format section"
    for shell in examples:
        text = shell.replace('\\"', '"').replace("$(date +%s)", str(int(now)))
        p = codec.decode_proposal({"data": text}, now=now)
        doc = json.loads(text)
        assert (p.id, p.agent, p.asset, p.direction.value, p.size, p.timestamp) == (
            doc["id"], doc["agent"], doc["asset"], doc["direction"], doc["size"], now)
        # raw bytes off the stream decode the same
        assert codec.decode_proposal({b"data": text.encode()}, now=now) == p
    records = re.findall(r"HSETNX \S+ (\S+) '(\{.*?\})'", section)
    assert records
    for name, raw in records:
        assert codec.agent_from_json(name, raw).name == name
    # the documented required fields, and the documented defaults of the optional ones
    required = ("id", "agent", "asset", "direction", "size", "timestamp")
    for field_name in required:
        assert f"`{field_name}`" in section.split("Optional:")[0]
    minimal = {"id": "x", "agent": "a", "asset": "AAPL", "direction": "short",
               "size": 0.1, "timestamp": now}
    p = codec.decode_proposal({"data": json.dumps(minimal)}, now=now)
    optional = section.split("Optional:")[1].split("From redis-cli")[0]
    documented = {"v": 1, "expected_profit": 0, "risk_score": 0.5, "narrative_id": "",
                  "signal_type": "manual", "confidence": 1, "horizon": 300,
                  "stop_loss": 0.02, "take_profit": 0.04}
    for field_name, value in documented.items():
        shown = f'"{value}"' if isinstance(value, str) else f"{value:g}"
        assert f"`{field_name}`" in optional and shown in optional, field_name
        got = p.schema if field_name == "v" else getattr(p, field_name)
        assert got == value, field_name
    for field_name in required:
        with pytest.raises(CodecError, match=f"missing field '{field_name}'"):
            codec.decode_proposal({"data": json.dumps(
                {k: v for k, v in minimal.items() if k != field_name})}, now=now)
    with pytest.raises(CodecError, match="field 'size' must be > 0, got 0"):
        codec.decode_proposal({"data": json.dumps({**minimal, "size": 0})}, now=now)
    with pytest.raises(CodecError, match="longer than 100 characters"):
        codec.decode_proposal({"data": json.dumps({**minimal, "id": "x" * 101})}, now=now)
    with pytest.raises(CodecError, match="clock_tolerance"):
        codec.decode_proposal({"data": json.dumps({**minimal, "timestamp": now + 61})},
                              now=now)


def test_unknown_fields_are_ignored_and_strict_utf8_holds_for_bytes():
    d = {**codec.proposal_to_dict(proposal()), "comment": {"nested": [1, 2]}}
    assert codec.decode_proposal(fields_of(d), now=NOW) == proposal()
    raw = json.dumps(codec.proposal_to_dict(proposal(asset="ÄPL")), ensure_ascii=False)
    assert codec.decode_proposal({"data": raw.encode()}, now=NOW).asset == "ÄPL"
    bad = raw.encode().replace("Ä".encode(), b"\xc3")
    with pytest.raises(CodecError, match=r"^field 'data' is not UTF-8$"):
        codec.decode_proposal({"data": bad}, now=NOW)
    with pytest.raises(CodecError, match=r"^field 'data' is not UTF-8$"):
        codec.decode_proposal({"data": bad.decode("utf-8", "surrogateescape")}, now=NOW)
    escaped = json.dumps({**codec.proposal_to_dict(proposal()), "agent": "\udcff"})
    with pytest.raises(CodecError, match=r"^field 'agent' is not UTF-8$"):
        codec.decode_proposal({"data": escaped}, now=NOW)


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


def test_ledger_entry_encodes_as_its_sorted_dict_and_back():
    from rawe_cli.collective import LedgerEntry
    from rawe_cli.models import Decision, OrderStatus

    d = Decision("d-1", NOW, "AAPL", Direction.SHORT, 0.123456789, 2.5, 1.0, 3.0,
                 ("a", "b", "c"), ("z",), ("p1", "p2", "p3"), 300.0, 0.02, 0.04,
                 (1.0, 0.75, 1.25), ("p9",))
    for entry in (LedgerEntry(d, "pending"),
                  LedgerEntry(d, "closed", OrderStatus.FILLED, 1.5, 101.25, 0.01, "r", "stop",
                              99.5, NOW + 60, -2.625, fence=7)):
        text = codec.ledger_to_json(entry)
        assert text == json.dumps(entry.to_dict(), separators=(",", ":"), sort_keys=True)
        assert codec.ledger_from_json(text) == entry
