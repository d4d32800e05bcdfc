"""`rawe agents`: N agents that read the feed and publish proposals."""

from __future__ import annotations

from typing import Annotated

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
    settings_from,
)
from rawe_cli.errors import RaweError


def agents(
    agents: AgentsOpt = 5,
    personalities: PersonalitiesOpt = None,
    redis_url: RedisUrlOpt = DEFAULT_REDIS_URL,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
    seed: SeedOpt = None,
    bar_size: BarSizeOpt = None,
    feed: Annotated[str, typer.Option("--feed", help="synthetic: own the synthetic world; "
                                      "alpaca: own an Alpaca prices+news feed (both are "
                                      "published on the market stream); bus: follow the market "
                                      "stream another process owns.")] = "synthetic",
    speed: Annotated[float, typer.Option("--speed", help="Synthetic feed: event seconds per "
                                         "wall second.")] = 1.0,
    ticks: Annotated[int | None, typer.Option("--ticks", help="Stop after N ticks.",
                                              show_default=False)] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after SECONDS.",
                                                   show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per proposal.")] = False,
) -> None:
    """Run N agents: read the market, publish proposals on the bus (they never trade)."""
    import asyncio
    import signal

    from rich.console import Console

    from rawe_cli.agents_service import AgentsOptions, AgentsService
    from rawe_cli.config import load_personalities, pick_agents

    if feed not in ("synthetic", "alpaca", "bus"):
        raise RaweError(f"--feed must be synthetic, alpaca or bus, got {feed!r}")
    if speed <= 0:
        raise RaweError("--speed must be > 0")
    settings = settings_from(config, seed=seed, namespace=namespace, tick_seconds=bar_size)
    chosen = pick_agents(load_personalities(personalities), agents, settings.seed)
    console = Console()

    def say(line: str) -> None:
        if quiet and line.startswith("proposal "):
            return
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    source = None
    if feed == "alpaca":
        from rawe_cli.feeds.factory import make_feed

        source = make_feed("alpaca", settings, ticks=ticks)
    opts = AgentsOptions(settings=settings, personalities=chosen, redis_url=redis_url,
                         feed=source, follow_bus=feed == "bus", speed=speed, ticks=ticks,
                         duration=duration)

    async def main() -> None:
        service = AgentsService(opts, say)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop.set)
        await service.run()
        say(f"agents stopped after {service.ticks} ticks, {service.published} proposals")

    asyncio.run(main())


def register(app: typer.Typer) -> None:
    app.command("agents")(agents)
