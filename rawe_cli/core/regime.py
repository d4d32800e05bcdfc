"""A market-regime classifier: incremental, from prices only. Pure.

It sees only bars (never a feed's "true" regime) and labels the market, tick by tick:

* **volatility**: the cross-sectional mean of squared log returns of the tick's bars,
  smoothed by an EWMA (half-life ``fast_halflife`` ticks), on a log scale. Two centroids
  (a calm and a volatile level) are learned online (2-means: the nearer centroid moves a
  little toward each new value), so the classifier needs no absolute threshold and works on
  any asset class or bar size. The label flips only when the smoothed level crosses the
  midpoint of the two centroids by more than a hysteresis band (``band`` of their distance).
* **trend** (``use_trend=True``): the cross-sectional mean efficiency ratio (|net move| /
  path length over ``trend_window`` bars, 1 = straight line, 0 = back and forth), labelled
  ``trending`` / ``ranging`` the same way. Off by default: on the synthetic world it
  separates the regimes only weakly, and every extra label splits the learning of a
  regime-aware scheme over more cells.

Labels: ``calm`` / ``volatile`` (with trend: ``calm-trending``, ``volatile-ranging``, ...);
None during the first ``warmup`` ticks. Work per bar is constant.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from rawe_cli.models import Bar

CALM = "calm"
VOLATILE = "volatile"
TRENDING = "trending"
RANGING = "ranging"


@dataclass(frozen=True, slots=True)
class RegimeParams:
    fast_halflife: float = 10.0  # ticks: smoothing of the volatility (and trend) level
    centroid_rate: float = 0.002  # how fast the two learned levels follow the data
    band: float = 0.1  # hysteresis, a share of the distance between the two levels
    warmup: int = 50  # ticks before the first label
    use_trend: bool = False
    trend_window: int = 20  # bars per symbol for the efficiency ratio


@dataclass(slots=True)
class _TwoMeans:
    """A smoothed level, two online centroids and a hysteretic label."""

    low_label: str
    high_label: str
    spread: float  # initial half-distance between the centroids
    level: float | None = None
    lo: float = 0.0
    hi: float = 0.0
    label: str | None = None
    seen: int = 0

    def update(self, x: float, alpha: float, rate: float, band: float, warmup: int
               ) -> str | None:
        self.level = x if self.level is None else self.level + alpha * (x - self.level)
        self.seen += 1
        if self.seen < warmup:
            return None
        v = self.level
        if self.seen == warmup:
            self.lo, self.hi = v - self.spread, v + self.spread
        if abs(v - self.lo) <= abs(v - self.hi):
            self.lo += rate * (v - self.lo)
            nearest = self.low_label
        else:
            self.hi += rate * (v - self.hi)
            nearest = self.high_label
        mid = 0.5 * (self.lo + self.hi)
        margin = band * abs(self.hi - self.lo)
        if v > mid + margin:
            self.label = self.high_label
        elif v < mid - margin:
            self.label = self.low_label
        elif self.label is None:
            self.label = nearest
        return self.label


@dataclass(slots=True)
class _SymbolState:
    last: float
    moves: deque[float]
    path: float = 0.0  # sum of |moves|
    net: float = 0.0  # sum of moves


@dataclass(slots=True)
class RegimeClassifier:
    params: RegimeParams = field(default_factory=RegimeParams)
    regime: str | None = None
    ticks: int = 0
    _symbols: dict[str, _SymbolState] = field(default_factory=dict)
    _vol: _TwoMeans = field(default_factory=lambda: _TwoMeans(CALM, VOLATILE, 0.2))
    _trend: _TwoMeans = field(default_factory=lambda: _TwoMeans(RANGING, TRENDING, 0.05))

    def update(self, bars: Iterable[Bar]) -> str | None:
        """One tick's bars in; the regime label after them out (None while warming up)."""
        p = self.params
        sq = 0.0
        er = 0.0
        n = 0
        m = 0
        window = p.trend_window
        for bar in bars:
            st = self._symbols.get(bar.symbol)
            if st is None:
                self._symbols[bar.symbol] = _SymbolState(bar.close, deque())
                continue
            if st.last <= 0 or bar.close <= 0:
                st.last = bar.close
                continue
            r = math.log(bar.close / st.last)
            st.last = bar.close
            sq += r * r
            n += 1
            if p.use_trend:
                st.moves.append(r)
                st.path += abs(r)
                st.net += r
                if len(st.moves) > window:
                    old = st.moves.popleft()
                    st.path -= abs(old)
                    st.net -= old
                if len(st.moves) == window and st.path > 0:
                    er += abs(st.net) / st.path
                    m += 1
        if n == 0:
            return self.regime
        self.ticks += 1
        alpha = 1.0 - 0.5 ** (1.0 / p.fast_halflife)
        vol = self._vol.update(math.log(sq / n + 1e-30), alpha, p.centroid_rate, p.band,
                               p.warmup)
        label = vol
        if p.use_trend:
            trend = (self._trend.update(er / m, alpha, p.centroid_rate, p.band, p.warmup)
                     if m else self._trend.label)
            label = None if vol is None or trend is None else f"{vol}-{trend}"
        self.regime = label
        return label
