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

Scale-free, so that one set of parameters works on 5-second and on daily bars:

* how far the price has "run" is measured in units of the symbol's own noise over the
  narrative's life so far: ``z = run / (vol * sqrt(bars since the narrative began))``, where
  ``vol`` is the realized per-bar volatility (last ``vol_lookback`` bars);
* a narrative's loudness is its intensity against a running mean of the intensities seen
  (``intensity_ref`` only until there is one), so intensities on any scale work;
* the risk score compares the symbol's recent volatility with its own long-run level;
* the half-life and the signal cooldown are seconds of event time, resolved from bars by
  the caller (``NarrativeParams.resolved``).

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
    intensity_ref: float = 0.6  # "fully loud" until the running mean of intensities is known
    loud_share: float = 1.1  # fully loud: this multiple of the running mean intensity
    min_sentiment: float = 0.25  # |sentiment| below this is noise
    lead_z: float = 1.0  # leads: the price has run less than this many noise units
    exhaustion_fade: float = 0.6  # fading: intensity under this share of the peak
    exhaustion_z: float = 1.5  # ...and the price has run at least this many noise units
    expected_bars: float = 20.0  # expected move: this many bars of noise, scaled by strength
    signal_cooldown: float = 30.0  # seconds between two signals of one type per pair
    vol_lookback: int = 20  # bars for realized volatility
    vol_slow_bars: float = 500.0  # bars: the long-run volatility the risk score compares with
    evict_below: float = 0.02  # a narrative quieter than this (against "fully loud") goes

    @classmethod
    def resolved(cls, half_life: float, signal_cooldown: float) -> NarrativeParams:
        """The defaults with the two durations (seconds, already resolved from bars)."""
        return cls(half_life=half_life, signal_cooldown=signal_cooldown)


@dataclass(slots=True)
class _Thread:
    """One narrative on one symbol."""

    narrative_id: str
    intensity: float
    sentiment: float
    peak: float
    start_price: float
    start_bar: int  # the symbol's bar count when the narrative first touched it
    updated: float
    rising: bool = False
    last_signal: dict[SignalType, float] = field(default_factory=dict)


@dataclass(slots=True)
class _PriceState:
    last: float
    returns: deque[float]
    sumsq: float = 0.0  # running sum of the squared returns in `returns`
    bars: int = 0
    slow_var: float = 0.0  # EWMA of squared log returns (long run)
    slow_n: int = 0


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


class NarrativeEngine:
    def __init__(self, params: NarrativeParams | None = None) -> None:
        self.p = params or NarrativeParams()
        self._prices: dict[str, _PriceState] = {}
        self._threads: dict[str, dict[str, _Thread]] = {}  # symbol -> narrative id -> thread
        self._intensity_sum = 0.0
        self._intensity_n = 0

    # -- inputs --------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list[ArbitrageSignal]:
        state = self._prices.get(bar.symbol)
        if state is None:
            self._prices[bar.symbol] = _PriceState(bar.close, deque(maxlen=self.p.vol_lookback))
            return []
        if state.last > 0 and bar.close > 0:
            r = math.log(bar.close / state.last)
            returns = state.returns
            if len(returns) == returns.maxlen:
                state.sumsq -= returns[0] * returns[0]
            returns.append(r)
            state.sumsq += r * r
            if state.bars % 1024 == 0:  # no drift from the running sum
                state.sumsq = sum(x * x for x in returns)
            state.slow_n += 1
            rate = max(1.0 / state.slow_n, 1.0 / self.p.vol_slow_bars)
            state.slow_var += rate * (r * r - state.slow_var)
        state.last = bar.close
        state.bars += 1
        threads = self._threads.get(bar.symbol)
        if not threads:
            return []
        signals: list[ArbitrageSignal] = []
        for nid in list(threads):
            thread = threads[nid]
            self._decay(thread, bar.timestamp)
            if thread.intensity < self.p.evict_below * self._loud():
                del threads[nid]
                continue
            sig = self._evaluate(thread, bar.symbol, bar.timestamp)
            if sig is not None:
                signals.append(sig)
        return signals

    def on_event(self, event: NarrativeEvent) -> list[ArbitrageSignal]:
        signals: list[ArbitrageSignal] = []
        a = self.p.smoothing
        if event.intensity > 0:
            self._intensity_sum += event.intensity
            self._intensity_n += 1
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
                    start_bar=price.bars,
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

    def _loud(self) -> float:
        """The intensity that counts as fully loud: a multiple of the mean seen so far."""
        if self._intensity_n < 20:
            return self.p.intensity_ref
        return self.p.loud_share * self._intensity_sum / self._intensity_n

    def _volatility(self, state: _PriceState) -> float | None:
        """Realized per-bar volatility (root mean square of recent log returns)."""
        n = len(state.returns)
        if n < 2:
            return None
        return math.sqrt(max(0.0, state.sumsq) / n)

    def _evaluate(self, thread: _Thread, symbol: str, now: float) -> ArbitrageSignal | None:
        p = self.p
        sentiment = thread.sentiment
        if abs(sentiment) < p.min_sentiment or thread.start_price <= 0:
            return None
        state = self._prices[symbol]
        vol = self._volatility(state)
        if vol is None or vol <= 0:
            return None  # no noise level yet: nothing to measure a run against
        sign = 1.0 if sentiment > 0 else -1.0
        run = sign * (state.last / thread.start_price - 1.0)  # move in the sentiment's way
        age = max(1, state.bars - thread.start_bar)
        z = run / (vol * math.sqrt(age))
        loud = self._loud()
        loudness = _clamp(thread.intensity / loud)
        peak = _clamp(thread.peak / loud)
        expected = vol * math.sqrt(p.expected_bars) * abs(sentiment) * max(loudness, peak)
        slow = math.sqrt(state.slow_var) if state.slow_var > 0 else vol
        vol_ratio = vol / slow if slow > 0 else 1.0
        risk = _clamp(0.35 * _clamp(vol_ratio / 2) + 0.35 * (1 - abs(sentiment))
                      + 0.3 * (1 - loudness))

        kind: SignalType | None = None
        strength = 0.0
        profit = 0.0
        direction = Direction.LONG if sign > 0 else Direction.SHORT
        if thread.rising and z < p.lead_z:
            kind = SignalType.NARRATIVE_LEADS
            freshness = _clamp(1 - max(0.0, z) / p.lead_z)
            strength = _clamp(abs(sentiment) ** 0.5 * loudness ** 0.5 * (0.5 + 0.5 * freshness))
            profit = max(0.0, expected - max(0.0, run))
        elif thread.intensity < p.exhaustion_fade * thread.peak and z > p.exhaustion_z:
            kind = SignalType.NARRATIVE_EXHAUSTION
            fade = 1 - thread.intensity / max(thread.peak, 1e-12)
            overrun = _clamp(z / (2 * p.exhaustion_z))
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
                "run_z": round(z, 4),
                "volatility": round(vol, 8),
            },
        )
