"""Performance metrics of an equity curve and a list of closed trades. Pure.

The equity curve is sampled once per tick (after the tick's fills and exits), with the
initial cash in front. Per-tick returns are ``r_i = e_i / e_{i-1} - 1``.

* total return: ``e_last / e_first - 1``.
* annualisation: one period is one bar (a tick is a bar). ``bar_seconds`` is the bar size
  of the data (the median spacing of each symbol's bars), and ``periods_per_year`` follows
  the data's calendar (``calendar_periods``):

  - bars around the clock (crypto, the synthetic world): 365.25 days a year of
    ``86,400 / bar_seconds`` bars (5-minute bars: 105,192 periods);
  - bars only on weekdays, when the data spans a weekend and has no bar on it (stocks):
    252 trading days a year, of as many bars as a full day of the data holds (daily bars:
    252; 5-minute bars in a 6.5-hour session: 78 a day, 19,656 a year);
  - equities replayed on the exchange's calendar (``sessions=True``: the data follows NYSE
    sessions, core/sessions.py): 252 sessions a year of ``6.5 h / bar_seconds`` bars
    (daily bars: 252), whatever the span of the data.

* Sharpe: ``mean(r) / stdev(r) * sqrt(periods_per_year)`` (sample stdev, no risk-free
  rate). None when the returns do not vary.
* Sortino: ``mean(r) / downside * sqrt(periods_per_year)``, ``downside =
  sqrt(mean(min(r, 0)^2))`` over all periods (target 0). None without a losing period.
* max drawdown: the largest fall from a running peak, a fraction of that peak (0.25 = 25%).
* win rate: share of closed trades with a positive net P&L (None without trades).
* exposure: share of ticks that ended with at least one position open.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence

SECONDS_PER_YEAR = 365.25 * 86_400


def returns(equity: Sequence[float]) -> list[float]:
    out = []
    for prev, cur in itertools.pairwise(equity):
        out.append(cur / prev - 1.0 if prev > 0 else 0.0)
    return out


def total_return(equity: Sequence[float]) -> float:
    if len(equity) < 2 or equity[0] <= 0:
        return 0.0
    return equity[-1] / equity[0] - 1.0


def time_step(timestamps: Sequence[float]) -> float | None:
    """The median spacing of the timestamps, seconds (None with fewer than two)."""
    gaps = [b - a for a, b in itertools.pairwise(timestamps) if b > a]
    return statistics.median(gaps) if gaps else None


def periods_per_year(step: float | None) -> float:
    """Bars a year around the clock (365.25 days)."""
    return SECONDS_PER_YEAR / step if step else 0.0


TRADING_DAYS = 252
CALENDAR = "calendar"  # 365.25 days a year, around the clock
SESSIONS = "trading-days"  # 252 days a year, of the data's own session length


SESSION_SECONDS = 6.5 * 3600  # a regular NYSE session


def calendar_periods(timestamps: Sequence[float], bar_seconds: float | None,
                     sessions: bool = False) -> tuple[float, str]:
    """(periods per year, convention) of bars at these times (see module doc)."""
    if not bar_seconds or not timestamps:
        return 0.0, CALENDAR
    day = 86_400.0
    if sessions:
        per_session = 1.0 if bar_seconds >= 0.8 * day else max(
            1.0, SESSION_SECONDS / bar_seconds)
        return TRADING_DAYS * per_session, SESSIONS
    per_day: dict[int, int] = {}
    for ts in timestamps:
        d = int(ts // day)
        per_day[d] = per_day.get(d, 0) + 1
    first, last = min(per_day), max(per_day)
    # 1970-01-01 (day 0) was a Thursday: weekday = (d + 3) % 7, Monday = 0
    weekend_days = [d for d in range(first, last + 1) if (d + 3) % 7 >= 5]
    full = bar_seconds >= 0.8 * day
    bars_per_day = 1.0 if full else day / bar_seconds
    inner = [n for d, n in per_day.items() if d not in (first, last)]
    if weekend_days and not any(d in per_day for d in weekend_days):
        if not full and inner:
            bars_per_day = min(day / bar_seconds, float(statistics.median(inner)))
        return TRADING_DAYS * bars_per_day, SESSIONS
    return SECONDS_PER_YEAR / bar_seconds, CALENDAR


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def sharpe(rets: Sequence[float], per_year: float) -> float | None:
    if len(rets) < 2 or per_year <= 0:
        return None
    mean = _mean(rets)
    sd = math.sqrt(math.fsum((r - mean) ** 2 for r in rets) / (len(rets) - 1))
    if sd <= 1e-15:
        return None
    return mean / sd * math.sqrt(per_year)


def sortino(rets: Sequence[float], per_year: float) -> float | None:
    if len(rets) < 2 or per_year <= 0:
        return None
    downside = math.sqrt(math.fsum(r * r for r in rets if r < 0) / len(rets))
    if downside <= 1e-15:
        return None
    return _mean(rets) / downside * math.sqrt(per_year)


def max_drawdown(equity: Sequence[float]) -> float:
    peak = -math.inf
    worst = 0.0
    for e in equity:
        if e > peak:
            peak = e
        elif peak > 0:
            dd = 1.0 - e / peak
            if dd > worst:
                worst = dd
    return worst


def win_rate(pnls: Sequence[float]) -> float | None:
    return sum(1 for p in pnls if p > 0) / len(pnls) if pnls else None


def summarize(equity: Sequence[float], timestamps: Sequence[float], pnls: Sequence[float],
              exposed_ticks: int, bar_seconds: float | None = None,
              sessions: bool = False) -> dict[str, float | int | str | None]:
    """Every metric of a run. `equity` has one more point than `timestamps` (the start);
    `bar_seconds` is the data's bar size (default: the median spacing of `timestamps`);
    `sessions`: the bars follow an exchange's sessions (see calendar_periods)."""
    step = time_step(timestamps)
    bar = bar_seconds or step
    per_year, convention = calendar_periods(timestamps, bar, sessions)
    rets = returns(equity)
    ticks = len(timestamps)
    return {
        "total_return": total_return(equity),
        "sharpe": sharpe(rets, per_year),
        "sortino": sortino(rets, per_year),
        "max_drawdown": max_drawdown(equity),
        "win_rate": win_rate(pnls),
        "trades": len(pnls),
        "exposure": exposed_ticks / ticks if ticks else 0.0,
        "final_equity": equity[-1] if equity else 0.0,
        "ticks": ticks,
        "step_seconds": step,
        "bar_seconds": bar,
        "periods_per_year": per_year,
        "calendar": convention,
    }
