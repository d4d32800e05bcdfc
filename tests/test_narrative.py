from rawe_cli.core.narrative import NarrativeEngine
from rawe_cli.models import Bar, Direction, NarrativeEvent, SignalType

T0 = 1_767_225_600.0


def bar(t: float, price: float, symbol: str = "AAPL") -> Bar:
    return Bar(t, symbol, price, price, price, price, 1000)


def warm(engine: NarrativeEngine, price: float = 100.0, n: int = 25) -> float:
    t = T0
    for i in range(n):
        engine.on_bar(bar(t, price * (1 + 0.0005 * ((-1) ** i))))
        t += 5
    return t


def test_building_narrative_before_the_price_moves_is_narrative_leads():
    eng = NarrativeEngine()
    t = warm(eng)
    signals = []
    for i, level in enumerate([0.2, 0.4, 0.6, 0.8, 0.9]):
        eng.on_bar(bar(t + 5 * i, 100.0))
        signals += eng.on_event(NarrativeEvent(t + 5 * i, "n-1", ("AAPL",), level, 0.9))
    leads = [s for s in signals if s.signal_type is SignalType.NARRATIVE_LEADS]
    assert leads, signals
    s = leads[-1]
    assert s.direction is Direction.LONG and s.financial_asset == "AAPL"
    assert 0 < s.strength <= 1 and s.expected_profit > 0 and 0 <= s.risk_score <= 1
    assert s.narrative_id == "n-1"


def test_negative_sentiment_leads_short():
    eng = NarrativeEngine()
    t = warm(eng)
    sigs = []
    for i, level in enumerate([0.3, 0.6, 0.9]):
        sigs += eng.on_event(NarrativeEvent(t + 5 * i, "n-2", ("AAPL",), level, -0.8))
    assert sigs and all(s.direction is Direction.SHORT for s in sigs)


def test_fading_narrative_after_a_price_run_is_exhaustion_against_the_run():
    eng = NarrativeEngine()
    t = warm(eng)
    price = 100.0
    signals = []
    levels = [0.4, 0.8, 1.0, 1.0, 0.9, 0.6, 0.4, 0.25, 0.15, 0.1]
    for i, level in enumerate(levels):
        price *= 1.008  # the price runs up with the story
        signals += eng.on_bar(bar(t + 5 * i, price))
        signals += eng.on_event(NarrativeEvent(t + 5 * i, "n-3", ("AAPL",), level, 0.8))
    exhausted = [s for s in signals if s.signal_type is SignalType.NARRATIVE_EXHAUSTION]
    assert exhausted
    assert all(s.direction is Direction.SHORT for s in exhausted)
    assert exhausted[0].metadata["price_run"] > 0


def test_weak_sentiment_and_unknown_symbols_make_no_signal():
    eng = NarrativeEngine()
    t = warm(eng)
    assert eng.on_event(NarrativeEvent(t, "n-4", ("AAPL",), 1.0, 0.05)) == []
    assert eng.on_event(NarrativeEvent(t, "n-5", ("ZZZ",), 1.0, 0.9)) == []


def test_cooldown_limits_repeated_signals_and_faded_narratives_are_forgotten():
    eng = NarrativeEngine()
    t = warm(eng)
    first = eng.on_event(NarrativeEvent(t, "n-6", ("AAPL",), 0.5, 0.9))
    second = eng.on_event(NarrativeEvent(t + 1, "n-6", ("AAPL",), 0.9, 0.9))
    assert first and not second
    eng.on_bar(bar(t + 10_000, 100.0))  # long silence: the narrative decays away
    assert "n-6" not in eng._threads.get("AAPL", {})
