"""Named synthetic worlds for `rawe backtest --scenario NAME --seed N`.

Each is the seeded synthetic world (feeds/synthetic.py) with some parameters changed:

* ``regime-switching`` (the default): momentum and reversal regimes alternate as a Markov
  chain (mean 1,500 bars each); the reversal regime is 1.6x noisier.
* ``momentum``: momentum only. Real narratives lead prices: following a building narrative
  pays, fading an exhausted one does not.
* ``reversal``: reversal only. Prices front-run narratives and give the move back: fading
  pays, chasing is late.
* ``noise``: narratives never move prices (no real narrative). No signal has an edge; a
  collective should lose no more than its costs, and a learning one should stop trading.
* ``slow``: momentum whose narratives live ten times longer (and move ten times slower): the
  shipped horizons are far too short there; `rawe tune` has to find the horizon.
* ``weak``: momentum with half the edge.

Every scenario takes the bar size of the settings (``tick_seconds``, ``--bar-size``): the
world is defined in bars and noise units, so it has the same shape at 1 minute and 1 day.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from rawe_cli.errors import UsageError
from rawe_cli.feeds.base import Tick
from rawe_cli.feeds.synthetic import MOMENTUM, REVERSAL, SyntheticWorld, WorldParams

SCENARIOS: dict[str, dict[str, object]] = {
    "regime-switching": {},
    "momentum": {"regimes": (MOMENTUM,)},
    "reversal": {"regimes": (REVERSAL,)},
    "noise": {"real_share": 0.0},
    "slow": {"regimes": (MOMENTUM,), "life_scale": 10.0},
    "weak": {"regimes": (MOMENTUM,), "edge": 0.45},
}
DEFAULT_SCENARIO = "regime-switching"


def scenario_params(name: str, base: WorldParams) -> WorldParams:
    """The world of scenario `name`, on `base`'s symbols, seed and tick length."""
    try:
        changes = SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise UsageError(f"unknown scenario {name!r} (known: {known})") from None
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def scenario_ticks(name: str, base: WorldParams, count: int) -> Iterator[Tick]:
    return SyntheticWorld(scenario_params(name, base)).ticks(count)
