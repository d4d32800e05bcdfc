"""A seeded synthetic world at any bar size: price bars and narrative events, with regimes.

Every bar (``tick_seconds`` of event time, from seconds to a day) each symbol gets a bar,
and every live narrative may be mentioned (a NarrativeEvent, stamped at a random moment
inside the bar, so that events fall *between* bars as in recorded data). The world is
defined in bars and in units of noise, so its shape is the same at every bar size:

* a narrative lives ``life`` bars (a range, times ``life_scale``); its intensity rises and
  fades (half a sine);
* per-bar noise is ``volatility`` (default: ``annual_vol`` scaled to the bar size, e.g. 35%
  a year is 1.3 bps per 5-second bar, 9 bps per 5-minute bar, 1.1% per hour... per day);
* a *real* narrative (``real_share`` of them) moves its symbols' prices in all by
  ``edge`` times the noise over its life (``edge * vol * sqrt(life)``, times |sentiment|),
  spread over tens of bars, so that no single bar shows it; the others are noise.

How a real narrative moves a price depends on the market regime at its birth:

* ``momentum``: the narrative leads the price. The price drifts in the sentiment's
  direction a little *behind* the intensity (``lag`` of its life), and keeps the move.
  Following a building narrative pays.
* ``reversal``: the price front-runs the narrative (it moves *ahead* of the intensity), then
  gives most of the move back (``giveback``) as the narrative fades. Fading an exhausted
  narrative pays; chasing a building one is late.

Regimes switch as a Markov chain with a mean length of ``regime_length`` bars, and the
reversal regime is noisier, so a regime classifier has something to see. ``real_share=0``
is a world with no edge at all. Same seed, same world: the generator draws only from its own
numpy Generator.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import numpy as np

from rawe_cli.feeds.base import Tick, paced
from rawe_cli.models import Bar, NarrativeEvent

MOMENTUM = "momentum"
REVERSAL = "reversal"
SECONDS_PER_YEAR = 365.25 * 86_400


@dataclass(frozen=True, slots=True)
class WorldParams:
    symbols: tuple[str, ...] = ("AAPL", "MSFT", "NVDA", "TSLA", "BTC/USD")
    seed: int = 7
    tick_seconds: float = 5.0  # the bar size
    start: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    regimes: tuple[str, ...] = (MOMENTUM, REVERSAL)
    regime_length: float = 1500.0  # mean bars between regime switches
    narrative_rate: float = 0.01  # new narratives per bar per 5 symbols
    life: tuple[int, int] = (40, 160)  # bars a narrative lives (before life_scale)
    life_scale: float = 1.0  # stretch every narrative's life (and so its move)
    real_share: float = 0.6  # share of narratives that move prices
    annual_vol: float = 0.35  # per-bar noise, when `volatility` is None, from this
    volatility: float | None = None  # per-bar log-return noise in the momentum regime
    reversal_vol_mult: float = 1.6  # the reversal regime's noise multiple
    edge: float = 0.9  # a real narrative's whole move, in units of vol * sqrt(life)
    lag: float = 0.15  # share of its life the price lags (momentum) / leads (reversal)
    giveback: float = 0.8  # reversal: share of the front-run move given back
    mention_prob: float = 0.5  # chance a live narrative is mentioned in a bar
    intensity_scale: float = 1.0  # intensities on another scale (the engine adapts)
    between_bars: bool = True  # events stamped inside the bar, not on it

    def bar_vol(self) -> float:
        if self.volatility is not None:
            return self.volatility
        return self.annual_vol * math.sqrt(self.tick_seconds / SECONDS_PER_YEAR)


@dataclass(slots=True)
class _Narrative:
    id: str
    symbols: tuple[str, ...]
    sentiment: float
    peak: float
    life: int
    age: int
    real: bool
    regime: str
    unit: float  # per-bar drift of a full sine step: edge * vol * sqrt(life) * pi / (2 life)

    def shape(self, age: float) -> float:
        if age < 0 or age >= self.life:
            return 0.0
        return math.sin(math.pi * age / self.life)


@dataclass(slots=True)
class SyntheticWorld:
    params: WorldParams = field(default_factory=WorldParams)

    def ticks(self, count: int | None = None) -> Iterator[Tick]:
        """The world, bar after bar (forever when count is None)."""
        p = self.params
        rng = np.random.default_rng(p.seed)
        n = len(p.symbols)
        index_of = {s: i for i, s in enumerate(p.symbols)}
        prices = np.array([50.0 + 450.0 * rng.random() for _ in range(n)])
        vol0 = p.bar_vol()
        regime = p.regimes[0]
        alive: list[_Narrative] = []
        serial = 0
        t = 0
        switch_prob = 1.0 / p.regime_length if len(p.regimes) > 1 else 0.0
        birth_rate = p.narrative_rate * max(1.0, n / 5.0)
        lo, hi = p.life
        step = p.tick_seconds
        while count is None or t < count:
            now = p.start + t * step
            if switch_prob and rng.random() < switch_prob:
                choices = [r for r in p.regimes if r != regime]
                regime = choices[int(rng.integers(len(choices)))]
            for _ in range(int(rng.poisson(birth_rate))):
                serial += 1
                k = 2 if (n > 1 and rng.random() < 0.25) else 1
                picks = rng.choice(n, size=k, replace=False)
                sign = 1.0 if rng.random() < 0.5 else -1.0
                life = max(4, round(int(rng.integers(lo, hi + 1)) * p.life_scale))
                real = bool(rng.random() < p.real_share)
                alive.append(_Narrative(
                    id=f"n-{p.seed}-{serial:05d}",
                    symbols=tuple(p.symbols[int(i)] for i in sorted(picks)),
                    sentiment=sign * float(rng.uniform(0.4, 1.0)),
                    peak=float(rng.uniform(0.5, 1.2)),
                    life=life,
                    age=0,
                    real=real,
                    regime=regime,
                    unit=p.edge * vol0 * math.sqrt(life) * math.pi / (2 * life),
                ))
            drift = np.zeros(n)
            for nar in alive:
                if not nar.real:
                    continue
                lag = p.lag * nar.life
                if nar.regime == MOMENTUM:
                    push = nar.unit * nar.sentiment * nar.shape(nar.age - lag)
                else:
                    # front-run: the whole move in the first half, ahead of the intensity;
                    # then `giveback` of it returned over the second half
                    half = nar.life / 2
                    if nar.age < half:
                        push = 2 * nar.unit * nar.sentiment * nar.shape(2 * (nar.age + lag))
                    else:
                        push = -2 * p.giveback * nar.unit * nar.sentiment * nar.shape(
                            2 * (nar.age - half))
                for s in nar.symbols:
                    drift[index_of[s]] += push
            vol = vol0 * (p.reversal_vol_mult if regime == REVERSAL else 1.0)
            noise = rng.normal(0.0, vol, n)
            opens = prices.copy()
            prices = prices * np.exp(drift + noise)
            wick = np.abs(rng.normal(0.0, vol / 2, (2, n)))
            highs = np.maximum(opens, prices) * (1 + wick[0])
            lows = np.minimum(opens, prices) * (1 - wick[1])
            volumes = rng.integers(1_000, 100_000, n)
            bars = tuple(
                Bar(now, p.symbols[i], round(float(opens[i]), 6), round(float(highs[i]), 6),
                    round(float(lows[i]), 6), round(float(prices[i]), 6), float(volumes[i]))
                for i in range(n)
            )
            # mentions, heard during the bar that closes at `now`
            events: list[NarrativeEvent] = []
            for nar in alive:
                if rng.random() < p.mention_prob:
                    level = max(0.0, nar.peak * nar.shape(nar.age) + float(rng.normal(0, 0.04)))
                    mood = max(-1.0, min(1.0, nar.sentiment + float(rng.normal(0.0, 0.08))))
                    at = now - float(rng.random()) * step if p.between_bars and t else now
                    events.append(NarrativeEvent(round(at, 3), nar.id, nar.symbols,
                                                 round(level * p.intensity_scale, 6),
                                                 round(mood, 6)))
            events.sort(key=lambda e: e.timestamp)
            for nar in alive:
                nar.age += 1
            alive = [nar for nar in alive if nar.age < nar.life]
            yield Tick(t, now, regime, bars, tuple(events))
            t += 1


@dataclass(slots=True)
class SyntheticFeed:
    """The world as a Feed: `count` ticks (None: forever), paced at `speed` (None: fast)."""

    params: WorldParams
    count: int | None = None
    speed: float | None = None
    max_lead: float | None = None  # at most this far ahead of the wall clock (event seconds)

    def ticks(self) -> AsyncIterator[Tick]:
        world = SyntheticWorld(self.params).ticks(self.count)
        return paced(world, self.params.tick_seconds, self.speed, self.max_lead)
