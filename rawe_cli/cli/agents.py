"""`rawe agents`: N agents that read the feed and publish proposals."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rawe_cli.cli.options import (
    DEFAULT_REDIS_URL,
    AgentsOpt,
    BarSizeOpt,
    ConfigOpt,
    NamespaceOpt,
    PersonalitiesOpt,
    RedisUrlOpt,
    SeedOpt,
    ShardsOpt,
    TimeframeOpt,
    settings_from,
)
from rawe_cli.errors import UsageError

if TYPE_CHECKING:
    from rawe_cli.app.agents_service import AgentsService
    from rawe_cli.cli.jsonlines import JsonLines
    from rawe_cli.config import Settings
    from rawe_cli.feeds.synthetic import SyntheticFeed
    from rawe_cli.models import Proposal
    from rawe_cli.ui.lines import Lines

# The synthetic world's pace: bars 20 times shorter than the settings' (0.25 s instead of
# 5 s), at the wall clock's pace, so that the README's quick start shows a proposal within
# seconds and a decision within a minute while event time stays wall time. --speed 1: the
# settings' bars.
DEFAULT_SPEED = 20.0


def agents(
    agents: AgentsOpt = 5,
    personalities: PersonalitiesOpt = None,
    redis_url: RedisUrlOpt = DEFAULT_REDIS_URL,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
    shards: ShardsOpt = None,
    seed: SeedOpt = None,
    bar_size: BarSizeOpt = None,
    timeframe: TimeframeOpt = None,
    feed: Annotated[str, typer.Option("--feed", help="synthetic: own the synthetic world; "
                                      "alpaca: own Alpaca's bar and news streams; "
                                      "alpaca-poll: poll Alpaca's prices and news (all three "
                                      "are published on the market stream); bus: follow the "
                                      "market stream another process owns.")] = "synthetic",
    speed: Annotated[float, typer.Option("--speed", help="Synthetic feed: bars this many "
                                         "times shorter than tick_seconds, at the wall "
                                         "clock's pace (20: a 0.25 s bar every 0.25 s, a first "
                                         "proposal within seconds; 1: the settings' bars).")
                     ] = DEFAULT_SPEED,
    ticks: Annotated[int | None, typer.Option("--ticks", help="Stop after N ticks.",
                                              show_default=False)] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after SECONDS.",
                                                   show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per proposal.")] = False,
    heartbeat: Annotated[float, typer.Option(
        "--heartbeat", help="Seconds between two heartbeat lines (ticks, signals, proposals); "
        "0: none.", min=0)] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="JSON Lines on stdout: one object "
                                           "per proposal, heartbeat and log line, and a "
                                           "summary when it stops.")] = False,
) -> None:
    """Run N agents: read the market, publish proposals on the bus (they never trade)."""
    import asyncio
    import signal

    from rawe_cli.app.agents_service import AgentsOptions, AgentsService
    from rawe_cli.cli import context
    from rawe_cli.cli.options import agents_from

    if feed not in ("synthetic", "alpaca", "alpaca-poll", "bus"):
        raise UsageError(f"--feed must be synthetic, alpaca, alpaca-poll or bus, got {feed!r}")
    if speed <= 0:
        raise UsageError("--speed must be > 0")
    settings = settings_from(config, seed=seed, namespace=namespace, tick_seconds=bar_size,
                             timeframe=timeframe, shards=shards or None)
    if feed != "bus":
        from rawe_cli.feeds.factory import feed_settings

        settings = feed_settings(feed, settings, bar_size=bar_size, timeframe=timeframe)
    chosen = agents_from(personalities, agents, settings.seed)
    if json_out:
        from rawe_cli.cli.jsonlines import JsonLines

        say = JsonLines()
    else:
        say = context.lines()

    from rawe_cli.bus.streams import _safe_url

    say(f"settings: {settings}", 10)  # debug (-v)
    say(f"redis {_safe_url(redis_url)}, namespace {settings.namespace}, feed {feed}, speed "
        f"{speed:g}", 10)
    source = None
    if feed in ("alpaca", "alpaca-poll"):
        from rawe_cli.feeds.factory import make_feed

        source = make_feed(feed, settings, ticks=ticks, log=say)
    elif feed == "synthetic":
        source = quick_world(settings, ticks, speed)
        # the agents resolve their durations in bars against the world's (shorter) bars
        settings = dataclasses.replace(settings, tick_seconds=settings.tick_seconds / speed)
    opts = AgentsOptions(settings=settings, personalities=chosen, redis_url=redis_url,
                         feed=source, follow_bus=feed == "bus", speed=speed, ticks=ticks,
                         duration=duration)

    class Agents(AgentsService):
        def proposed(self, p: Proposal) -> None:
            if json_out:
                say.event("proposal", **proposal_fields(p))
            elif not quiet:
                super().proposed(p)

    async def main() -> Agents:
        service = Agents(opts, say)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop, service, sig)
        beat = asyncio.create_task(_heartbeats(service, say, heartbeat, json_out))
        try:
            await service.run()
        finally:
            beat.cancel()
        return service

    service = asyncio.run(main())
    counts = _counts(service)
    if json_out:
        say.event("stopped", **counts)
    else:
        say(f"agents stopped after {counts['ticks']:,} ticks, {counts['signals']:,} signals, "
            f"{counts['proposals']:,} proposals")


def quick_world(settings: Settings, ticks: int | None, speed: float) -> SyntheticFeed:
    """The synthetic world from the wall clock on, with bars `speed` times shorter than the
    settings' and at the wall clock's pace: event time stays wall time (the engine refuses
    market messages more than `clock_tolerance` ahead of the wall clock), and the world
    shows life `speed` times sooner (5 s bars at 20x: a 0.25 s bar every 0.25 s)."""
    import time

    from rawe_cli.feeds.synthetic import SyntheticFeed, WorldParams

    params = WorldParams(symbols=settings.symbols, seed=settings.seed,
                         tick_seconds=settings.tick_seconds / speed,
                         start=float(int(time.time())))
    return SyntheticFeed(params, ticks, 1.0)


def proposal_fields(p: Proposal) -> dict[str, Any]:
    import msgspec

    doc = msgspec.structs.asdict(p)
    del doc["schema"]  # the wire's `v`, not a field of the proposal
    doc["direction"] = p.direction.value
    return doc


def _counts(service: AgentsService) -> dict[str, float]:
    signals = service.pool.signals if service.pool is not None else 0
    return {"ticks": service.ticks, "signals": signals, "proposals": service.published,
            "event_time": service.now}


async def _heartbeats(service: AgentsService, say: Lines | JsonLines, every: float,
                      json_out: bool) -> None:
    """A line every `every` seconds, so that a quiet world still shows it is alive."""
    import asyncio

    from rawe_cli.cli.context import G
    from rawe_cli.ui.lines import clock_stamp

    if every <= 0:
        return
    last = _counts(service)
    while True:
        await asyncio.sleep(every)
        now = _counts(service)
        if json_out:
            say.event("heartbeat", **now)
        else:
            when = clock_stamp(now["event_time"], G.tz) if now["event_time"] else "-"
            say(f"heartbeat: {now['ticks']:,} ticks (event time {when}), "
                f"{now['signals']:,} signals, {now['proposals']:,} proposals; last "
                f"{every:g} s: +{now['ticks'] - last['ticks']:,} ticks, "
                f"+{now['signals'] - last['signals']:,} signals, "
                f"+{now['proposals'] - last['proposals']:,} proposals")
        last = now


def _stop(service: AgentsService, signum: int) -> None:
    from rawe_cli.cli import context

    context.stopped_by(signum)
    service.stop.set()


def register(app: typer.Typer) -> None:
    app.command("agents")(agents)
