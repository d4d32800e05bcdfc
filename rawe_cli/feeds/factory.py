"""Feeds by name: `synthetic` (the seeded world) or `alpaca` (market data and news)."""

from __future__ import annotations

from collections.abc import Mapping

from rawe_cli.clock import Clock
from rawe_cli.config import Settings
from rawe_cli.errors import UsageError
from rawe_cli.feeds.base import Feed

FEEDS = ("synthetic", "alpaca")


def make_feed(
    name: str,
    settings: Settings,
    *,
    ticks: int | None = None,
    fast: bool = False,
    speed: float = 25.0,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> Feed:
    """The feed called `name`, yielding `ticks` ticks (None: until stopped).

    synthetic: paced at `speed` event seconds per wall second, or as fast as it can with
    `fast`. alpaca: polls every `settings.tick_seconds` of wall time; `fast` makes no sense
    there and is refused.
    """
    name = (name or "").strip().lower()
    if name not in FEEDS:
        raise UsageError(f"unknown feed {name!r} (choose {' or '.join(FEEDS)})")
    if name == "synthetic":
        from rawe_cli.app.runtime import world_params
        from rawe_cli.feeds.synthetic import SyntheticFeed

        return SyntheticFeed(world_params(settings), ticks, None if fast else speed)
    if fast:
        raise UsageError("--fast needs the synthetic feed: the Alpaca feed polls in wall time, "
                        "every tick_seconds")
    from rawe_cli.brokers.alpaca import config_from_env
    from rawe_cli.clock import SystemClock
    from rawe_cli.feeds.alpaca import AlpacaFeed

    cfg = config_from_env(env, check_trading=False)
    return AlpacaFeed(cfg, settings.symbols, poll_seconds=settings.tick_seconds, count=ticks,
                      clock=clock or SystemClock())
