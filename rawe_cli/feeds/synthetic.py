"""A seeded synthetic world: price bars and narrative events, with regimes.

Every tick (``tick_seconds`` of event time) each symbol gets a bar, and every live
narrative may be mentioned (a NarrativeEvent). A narrative lives 30 to 80 ticks; its
intensity rises and then fades (half a sine). Some narratives are *real* and move the price
of their symbols; the others are noise. How a real narrative moves a price depends on the
market regime at its birth:

* ``momentum``: the narrative leads the price. The price drifts in the sentiment's direction
  a few ticks *behind* the intensity, and keeps the move. Buying a building narrative pays.
* ``reversal``: the price front-runs the narrative (it moves *ahead* of the intensity, and
  harder), then gives the move back as the narrative fades. Fading an exhausted narrative
  pays; chasing a building one is late.

Regimes switch as a Markov chain with a mean length of ``regime_length`` ticks, and the
reversal regime is noisier, so a regime classifier has something to see. Same seed, same
world: the generator draws only from its own numpy Generator.
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


@dataclass(frozen=True, slots=True)
class WorldParams:
    symbols: tuple[str, ...] = ("AAPL", "MSFT", "NVDA", "TSLA", "BTC/USD")
    seed: int = 7
    tick_seconds: float = 5.0
    start: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    regimes: tuple[str, ...] = (MOMENTUM, REVERSAL)
    regime_length: float = 400.0  # mean ticks between regime switches
    narrative_rate: float = 0.05  # new narratives per tick per symbol... scaled below
    real_share: float = 0.7  # share of narratives that move prices
    volatility: float = 0.0012  # per-tick log-return noise in the momentum regime
    reversal_vol_mult: float = 1.6  # the reversal regime's noise multiple
    impact: float = 0.0016  # per-tick drift of a full-intensity, full-sentiment narrative
    lag: int = 6  # ticks the price lags (momentum) or leads (reversal) the narrative
    mention_prob: float = 0.8  # chance a live narrative is mentioned in a tick


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

    def intensity(self, age: float) -> float:
        if age < 0 or age >= self.life:
            return 0.0
        return self.peak * math.sin(math.pi * age / self.life)


@dataclass(slots=True)
class SyntheticWorld:
    params: WorldParams = field(default_factory=WorldParams)

    def ticks(self, count: int | None = None) -> Iterator[Tick]:
        """The world, tick after tick (forever when count is None)."""
        p = self.params
        rng = np.random.default_rng(p.seed)
        n = len(p.symbols)
        index_of = {s: i for i, s in enumerate(p.symbols)}
        base = np.array([50.0 + 450.0 * rng.random() for _ in range(n)])
        prices = base.copy()
        regime = p.regimes[0]
        alive: list[_Narrative] = []
        serial = 0
        t = 0
        switch_prob = 1.0 / p.regime_length if len(p.regimes) > 1 else 0.0
        birth_rate = p.narrative_rate * max(1.0, n / 5.0)
        while count is None or t < count:
            now = p.start + t * p.tick_seconds
            if switch_prob and rng.random() < switch_prob:
                choices = [r for r in p.regimes if r != regime]
                regime = choices[int(rng.integers(len(choices)))]
            # births
            births = int(rng.poisson(birth_rate))
            for _ in range(births):
                serial += 1
                k = 2 if (n > 1 and rng.random() < 0.25) else 1
                picks = rng.choice(n, size=k, replace=False)
                sign = 1.0 if rng.random() < 0.5 else -1.0
                alive.append(_Narrative(
                    id=f"n-{p.seed}-{serial:05d}",
                    symbols=tuple(p.symbols[int(i)] for i in sorted(picks)),
                    sentiment=sign * float(rng.uniform(0.4, 1.0)),
                    peak=float(rng.uniform(0.5, 1.2)),
                    life=int(rng.integers(30, 81)),
                    age=0,
                    real=bool(rng.random() < p.real_share),
                    regime=regime,
                ))
            # price drift from real narratives
            drift = np.zeros(n)
            for nar in alive:
                if not nar.real:
                    continue
                if nar.regime == MOMENTUM:
                    push = p.impact * nar.sentiment * nar.intensity(nar.age - p.lag)
                else:
                    half = nar.life / 2
                    if nar.age < half:
                        push = 1.8 * p.impact * nar.sentiment * nar.intensity(nar.age + p.lag)
                    else:
                        push = -1.6 * p.impact * nar.sentiment * nar.intensity(nar.age)
                for s in nar.symbols:
                    drift[index_of[s]] += push
            vol = p.volatility * (p.reversal_vol_mult if regime == REVERSAL else 1.0)
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
            # mentions
            events: list[NarrativeEvent] = []
            for nar in alive:
                if rng.random() < p.mention_prob:
                    level = max(0.0, nar.intensity(nar.age) + float(rng.normal(0.0, 0.04)))
                    mood = max(-1.0, min(1.0, nar.sentiment + float(rng.normal(0.0, 0.08))))
                    events.append(NarrativeEvent(now, nar.id, nar.symbols, round(level, 6),
                                                 round(mood, 6)))
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

    def ticks(self) -> AsyncIterator[Tick]:
        world = SyntheticWorld(self.params).ticks(self.count)
        return paced(world, self.params.tick_seconds, self.speed)
