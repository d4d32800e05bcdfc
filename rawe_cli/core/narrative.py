"""The narrative engine: from narrative events and prices, arbitrage signals.

Pure: every call takes the event time; no I/O, no clock, no randomness.

For each (narrative, symbol) it keeps an exponentially smoothed intensity and sentiment,
the peak intensity seen, and the price when the narrative first touched the symbol. Between
events the intensity decays with a half-life, so a narrative that stops being talked about
fades. Two signal types:

* ``narrative_leads``: the narrative is building (smoothed intensity rising, sentiment
  clear) while the price has not yet moved its way. Direction: the sentiment's.
* ``narrative_exhaustion``: the narrative is fading (intensity well under its peak) while
  the price has already run far in the sentiment's direction. Direction: against the run.

Work per event is constant; work per bar is proportional to the narratives active on that
symbol, which are evicted once faded.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from rawe_cli.models import ArbitrageSignal, Bar, Direction, NarrativeEvent, SignalType


@dataclass(frozen=True, slots=True)
class NarrativeParams:
    smoothing: float = 0.4  # weight of a new observation in the intensity / sentiment EMAs
    half_life: float = 120.0  # seconds for an unmentioned narrative's intensity to halve
    intensity_ref: float = 0.6  # intensity at which a narrative counts as fully loud
    min_sentiment: float = 0.25  # |sentiment| below this is noise
    expected_move: float = 0.03  # move a full-strength narrative is expected to cause
    exhaustion_fade: float = 0.6  # fading: intensity under this share of the peak
    exhaustion_run: float = 0.5  # ...and price has run this share of expected_move
    signal_cooldown: float = 30.0  # seconds between two signals of one type per pair
    vol_lookback: int = 20  # bars for realized volatility
    vol_ref: float = 0.002  # per-bar volatility counted as "normal"
    evict_below: float = 0.02  # a narrative quieter than this is forgotten


@dataclass(slots=True)
class _Thread:
    """One narrative on one symbol."""

    narrative_id: str
    intensity: float
    sentiment: float
    peak: float
    start_price: float
    updated: float
    rising: bool = False
    last_signal: dict[SignalType, float] = field(default_factory=dict)


@dataclass(slots=True)
class _PriceState:
    last: float
    returns: deque[float]


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


class NarrativeEngine:
    def __init__(self, params: NarrativeParams | None = None) -> None:
        self.p = params or NarrativeParams()
        self._prices: dict[str, _PriceState] = {}
        self._threads: dict[str, dict[str, _Thread]] = {}  # symbol -> narrative id -> thread

    # -- inputs --------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list[ArbitrageSignal]:
        state = self._prices.get(bar.symbol)
        if state is None:
            self._prices[bar.symbol] = _PriceState(bar.close, deque(maxlen=self.p.vol_lookback))
            return []
        if state.last > 0:
            state.returns.append(math.log(bar.close / state.last))
        state.last = bar.close
        threads = self._threads.get(bar.symbol)
        if not threads:
            return []
        signals: list[ArbitrageSignal] = []
        for nid in list(threads):
            thread = threads[nid]
            self._decay(thread, bar.timestamp)
            if thread.intensity < self.p.evict_below:
                del threads[nid]
                continue
            sig = self._evaluate(thread, bar.symbol, bar.timestamp)
            if sig is not None:
                signals.append(sig)
        return signals

    def on_event(self, event: NarrativeEvent) -> list[ArbitrageSignal]:
        signals: list[ArbitrageSignal] = []
        a = self.p.smoothing
        for symbol in event.symbols:
            price = self._prices.get(symbol)
            if price is None:  # no price yet: nothing to compare the narrative with
                continue
            threads = self._threads.setdefault(symbol, {})
            thread = threads.get(event.narrative_id)
            if thread is None:
                thread = _Thread(
                    narrative_id=event.narrative_id,
                    intensity=a * event.intensity,
                    sentiment=event.sentiment,
                    peak=a * event.intensity,
                    start_price=price.last,
                    updated=event.timestamp,
                    rising=event.intensity > 0,
                )
                threads[event.narrative_id] = thread
            else:
                self._decay(thread, event.timestamp)
                before = thread.intensity
                thread.intensity = a * event.intensity + (1 - a) * thread.intensity
                thread.sentiment = a * event.sentiment + (1 - a) * thread.sentiment
                thread.rising = thread.intensity > before
                thread.peak = max(thread.peak, thread.intensity)
                thread.updated = event.timestamp
            sig = self._evaluate(thread, symbol, event.timestamp)
            if sig is not None:
                signals.append(sig)
        return signals

    # -- internals -----------------------------------------------------------------------

    def _decay(self, thread: _Thread, now: float) -> None:
        dt = now - thread.updated
        if dt > 0:
            thread.intensity *= 0.5 ** (dt / self.p.half_life)
            thread.updated = now
            thread.rising = False

    def _volatility(self, symbol: str) -> float:
        returns = self._prices[symbol].returns
        n = len(returns)
        if n < 2:
            return self.p.vol_ref
        mean = sum(returns) / n
        return math.sqrt(sum((r - mean) ** 2 for r in returns) / (n - 1))

    def _evaluate(self, thread: _Thread, symbol: str, now: float) -> ArbitrageSignal | None:
        p = self.p
        sentiment = thread.sentiment
        if abs(sentiment) < p.min_sentiment or thread.start_price <= 0:
            return None
        sign = 1.0 if sentiment > 0 else -1.0
        price = self._prices[symbol].last
        run = sign * (price / thread.start_price - 1.0)  # move in the sentiment's direction
        loudness = _clamp(thread.intensity / p.intensity_ref)
        expected = p.expected_move * abs(sentiment) * max(loudness, thread.peak / p.intensity_ref)
        vol = self._volatility(symbol)
        vol_ratio = vol / p.vol_ref
        risk = _clamp(0.35 * _clamp(vol_ratio / 2) + 0.35 * (1 - abs(sentiment))
                      + 0.3 * (1 - loudness))

        kind: SignalType | None = None
        strength = 0.0
        direction = Direction.LONG if sign > 0 else Direction.SHORT
        if thread.rising and run < 0.5 * expected:
            kind = SignalType.NARRATIVE_LEADS
            freshness = _clamp(1 - max(0.0, run) / max(expected, 1e-9))
            strength = _clamp(abs(sentiment) ** 0.5 * loudness ** 0.5 * (0.5 + 0.5 * freshness))
            profit = max(0.0, expected - max(0.0, run))
        elif (
            thread.intensity < p.exhaustion_fade * thread.peak
            and run > p.exhaustion_run * expected
            and expected > 0
        ):
            kind = SignalType.NARRATIVE_EXHAUSTION
            fade = 1 - thread.intensity / max(thread.peak, 1e-9)
            overrun = _clamp(run / (2 * expected))
            strength = _clamp((0.5 * fade + 0.5 * overrun) * 1.2)
            profit = run * 0.5
            direction = direction.opposite
        if kind is None:
            return None
        last = thread.last_signal.get(kind)
        if last is not None and now - last < p.signal_cooldown:
            return None
        thread.last_signal[kind] = now
        return ArbitrageSignal(
            timestamp=now,
            narrative_id=thread.narrative_id,
            financial_asset=symbol,
            signal_type=kind,
            strength=round(strength, 6),
            expected_profit=round(profit, 6),
            risk_score=round(risk, 6),
            metadata={
                "direction": direction.value,
                "intensity": round(thread.intensity, 6),
                "peak": round(thread.peak, 6),
                "sentiment": round(sentiment, 6),
                "price_run": round(run, 6),
                "volatility": round(vol, 8),
            },
        )
