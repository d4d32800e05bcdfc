"""Feeds by name: `synthetic` (the seeded world), `alpaca` (Alpaca's market data and news
streams, with REST backfill) or `alpaca-poll` (the same data polled by REST)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from rawe_cli.clock import Clock
from rawe_cli.config import Settings
from rawe_cli.errors import UsageError
from rawe_cli.feeds.base import Feed

FEEDS = ("synthetic", "alpaca", "alpaca-poll")


def feed_name(name: str) -> str:
    name = (name or "").strip().lower()
    if name not in FEEDS:
        raise UsageError(f"unknown feed {name!r} (choose {', '.join(FEEDS)})")
    return name


def feed_settings(name: str, settings: Settings, *, bar_size: str | None = None,
                  timeframe: str | None = None) -> Settings:
    """The settings at the feed's bar size: `--feed alpaca` has the bar size of its
    timeframe (1Min: 60 s), so every duration in bars resolves against it; the others keep
    tick_seconds. `bar_size`, `timeframe`: the flags as given (None: not given)."""
    name = feed_name(name)
    if name == "alpaca":
        if bar_size is not None:
            raise UsageError("--bar-size is for the synthetic world and --feed alpaca-poll; "
                             "the bar size of --feed alpaca is its timeframe (--timeframe "
                             "5Min, setting timeframe)")
        from rawe_cli.timeframe import parse_timeframe

        seconds = parse_timeframe(settings.timeframe).seconds
        return dataclasses.replace(settings, tick_seconds=seconds)
    if timeframe is not None:
        raise UsageError(f"--timeframe goes with --feed alpaca (this feed, {name}, has "
                         f"--bar-size)")
    return settings


def make_feed(
    name: str,
    settings: Settings,
    *,
    ticks: int | None = None,
    fast: bool = False,
    speed: float = 25.0,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    log: Callable[[str], None] | None = None,
) -> Feed:
    """The feed called `name`, yielding `ticks` ticks (None: until stopped).

    synthetic: paced at `speed` event seconds per wall second, or as fast as it can with
    `fast`. alpaca: bars of `settings.timeframe` as the streams deliver them; `log` hears
    of drops and reconnects. alpaca-poll: polls every `settings.tick_seconds` of wall time.
    `fast` makes no sense with either Alpaca feed and is refused.
    """
    name = feed_name(name)
    if name == "synthetic":
        from rawe_cli.app.runtime import world_params
        from rawe_cli.feeds.synthetic import SyntheticFeed

        return SyntheticFeed(world_params(settings), ticks, None if fast else speed)
    if fast:
        raise UsageError("--fast needs the synthetic feed: the Alpaca feeds run in wall time")
    from rawe_cli.brokers.alpaca import config_from_env
    from rawe_cli.clock import SystemClock
    from rawe_cli.core.news import NewsParams

    cfg = config_from_env(env, check_trading=False)
    news = NewsParams(scorer=settings.sentiment)
    if name == "alpaca-poll":
        from rawe_cli.feeds.alpaca import AlpacaFeed

        return AlpacaFeed(cfg, settings.symbols, poll_seconds=settings.tick_seconds,
                          count=ticks, clock=clock or SystemClock(), news_params=news)
    from rawe_cli.feeds.alpaca_stream import AlpacaStreamFeed

    return AlpacaStreamFeed(cfg, settings.symbols, timeframe=settings.timeframe,
                            data_feed=settings.data_feed, count=ticks,
                            clock=clock or SystemClock(), say=log, news_params=news)
