"""Price levels (stop-loss, take-profit) as a fraction of price or in units of noise. Pure.

* a number (``0.02``) or a percentage (``2%``): that fraction of the entry price;
* ``2.5vol``: 2.5 times the asset's noise over the holding horizon, i.e. its realized
  per-bar volatility times the square root of the horizon in bars. The same file then means
  "a wide stop" on 1-minute bars, where 2% is never reached, and on daily bars, where 2% is
  an ordinary day.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from rawe_cli.durations import NUMBER

FRACTION = "fraction"
VOL = "vol"
EXAMPLES = "0.02, 2%, or 2.5vol (multiples of the noise over the holding horizon)"
SUFFIXES = ("%", "vol", "sd", "sigma")  # "%": of the price; the others: units of noise
_PATTERN = re.compile(rf"^\s*({NUMBER})\s*({'|'.join(map(re.escape, SUFFIXES))})?\s*$",
                      re.IGNORECASE)
MIN_FRACTION = 1e-5
MAX_FRACTION = 0.9


@dataclass(frozen=True, slots=True)
class Level:
    value: float
    unit: str = FRACTION

    def fraction(self, bar_vol: float | None, horizon_bars: float) -> float:
        """The level as a fraction of price; `bar_vol` is the per-bar volatility (None:
        unknown, then a vol level falls back to 2% per unit... capped)."""
        if self.unit == FRACTION:
            return self.value
        noise = (bar_vol if bar_vol and bar_vol > 0 else 0.01) * math.sqrt(max(1.0,
                                                                               horizon_bars))
        return min(MAX_FRACTION, max(MIN_FRACTION, self.value * noise))

    def __str__(self) -> str:
        return f"{self.value:g}vol" if self.unit == VOL else f"{self.value:.2%}"


def parse_level(value: Any) -> Level:
    if isinstance(value, Level):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected {EXAMPLES}")
    if isinstance(value, int | float):
        number, unit = float(value), FRACTION
    elif isinstance(value, str):
        m = _PATTERN.match(value)
        if m is None:
            raise ValueError(f"not a level: {value!r} (expected {EXAMPLES})")
        number = float(m.group(1))
        suffix = (m.group(2) or "").lower()
        if suffix == "%":
            number, unit = number / 100.0, FRACTION
        elif suffix:
            unit = VOL
        else:
            unit = FRACTION
    else:
        raise ValueError(f"expected {EXAMPLES}, got {value!r}")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"must be > 0, got {value!r}")
    if unit == FRACTION and number > 1:
        raise ValueError(f"a fraction of price must be at most 1, got {value!r}")
    return Level(number, unit)
