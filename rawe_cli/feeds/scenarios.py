"""Named synthetic worlds for `rawe backtest --scenario NAME --seed N`.

Each is the seeded synthetic world (feeds/synthetic.py) with some parameters changed:

* ``regime-switching`` (the default): momentum and reversal regimes alternate as a Markov
  chain (mean 400 ticks each); the reversal regime is 1.6x noisier.
* ``momentum``: momentum only. Real narratives lead prices: following a building narrative
  pays, fading an exhausted one does not.
* ``reversal``: reversal only. Prices front-run narratives and give the move back: fading
  pays, chasing is late.
* ``noise``: narratives never move prices (no real narrative). No signal has an edge; a
  collective should lose about its costs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from rawe_cli.errors import RaweError
from rawe_cli.feeds.base import Tick
from rawe_cli.feeds.synthetic import MOMENTUM, REVERSAL, SyntheticWorld, WorldParams

SCENARIOS: dict[str, dict[str, object]] = {
    "regime-switching": {},
    "momentum": {"regimes": (MOMENTUM,)},
    "reversal": {"regimes": (REVERSAL,)},
    "noise": {"real_share": 0.0},
}
DEFAULT_SCENARIO = "regime-switching"


def scenario_params(name: str, base: WorldParams) -> WorldParams:
    """The world of scenario `name`, on `base`'s symbols, seed and tick length."""
    try:
        changes = SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise RaweError(f"unknown scenario {name!r} (known: {known})") from None
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def scenario_ticks(name: str, base: WorldParams, count: int) -> Iterator[Tick]:
    return SyntheticWorld(scenario_params(name, base)).ticks(count)
