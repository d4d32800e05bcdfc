"""`rawe run`: the whole collective in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from rawe_cli.cli.options import (
    AgentsOpt,
    BarSizeOpt,
    BrokerOpt,
    ConfigOpt,
    ConfirmLiveOpt,
    FeedOpt,
    JsonOpt,
    LiveOpt,
    NoDashboardOpt,
    PersonalitiesOpt,
    SchemeOpt,
    SeedOpt,
    ThresholdOpt,
    ThresholdShareOpt,
    WindowOpt,
    settings_from,
)
from rawe_cli.errors import RaweError


def run(
    agents: AgentsOpt = 5,
    personalities: PersonalitiesOpt = None,
    config: ConfigOpt = None,
    scheme: SchemeOpt = None,
    seed: SeedOpt = None,
    threshold: ThresholdOpt = None,
    threshold_share: ThresholdShareOpt = None,
    window: WindowOpt = None,
    bar_size: BarSizeOpt = None,
    ticks: Annotated[int | None, typer.Option("--ticks", help="Stop after N ticks.",
                                              show_default=False)] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after SECONDS of "
                                                   "wall time.", show_default=False)] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Simulated time, as fast as it can.")
                    ] = False,
    speed: Annotated[float, typer.Option("--speed", help="Without --fast: event seconds per "
                                         "wall second.")] = 50.0,
    redis_url: Annotated[str | None, typer.Option(
        "--redis-url", help="Use a real Redis instead of the embedded one (state carries on "
        "from what it holds).", show_default=False)] = None,
    no_dashboard: NoDashboardOpt = False,
    json_out: JsonOpt = False,
    broker: BrokerOpt = "paper",
    feed: FeedOpt = "synthetic",
    live: LiveOpt = False,
    confirm_live: ConfirmLiveOpt = False,
) -> None:
    """Run world, narrative engine, agents, consensus, broker and portfolio in one process.

    Without --ticks or --duration it runs until Ctrl-C. The bus is an embedded fakeredis
    unless --redis-url is given.
    """
    import asyncio
    import json
    import sys

    from rawe_cli.config import load_personalities, pick_agents
    from rawe_cli.durations import format_seconds
    from rawe_cli.runtime import RunOptions, run_embedded

    if ticks is not None and ticks < 1:
        raise RaweError("--ticks must be at least 1")
    if duration is not None and duration <= 0:
        raise RaweError("--duration must be > 0")
    if speed <= 0:
        raise RaweError("--speed must be > 0")
    settings = settings_from(config, scheme=scheme, seed=seed, threshold=threshold,
                             threshold_share=threshold_share, window=window,
                             tick_seconds=bar_size)
    chosen = pick_agents(load_personalities(personalities), agents, settings.seed)
    from rawe_cli.brokers.factory import make_broker
    from rawe_cli.feeds.factory import make_feed

    source = make_feed(feed, settings, ticks=ticks, fast=fast, speed=speed)
    executor = make_broker(broker, settings, live=live, confirm_live=confirm_live,
                           log=lambda line: typer.echo(line, err=True))
    opts = RunOptions(settings=settings, personalities=chosen, ticks=ticks, duration=duration,
                      fast=fast, speed=speed, redis_url=redis_url, broker=executor,
                      feed=source)

    if json_out:
        result = asyncio.run(run_embedded(opts))
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
        return

    from rich.console import Console

    from rawe_cli import views

    console = Console()
    if no_dashboard or not sys.stdout.isatty():
        def log(line: str) -> None:
            console.print(line, markup=False, highlight=False, soft_wrap=True)

        log(f"bar size {format_seconds(settings.bar_seconds)}, window "
            f"{settings.window} ({format_seconds(settings.window.seconds(settings.bar_seconds))})"
            f", scheme {settings.scheme}")

        result = asyncio.run(run_embedded(opts, log=log))
    else:
        from rich.live import Live

        with Live(console=console, refresh_per_second=4, screen=False,
                  vertical_overflow="crop") as live:
            def refresh(snap: dict) -> None:
                snap["ticks_total"] = ticks
                live.update(views.dashboard(snap))

            result = asyncio.run(run_embedded(opts, on_refresh=refresh))
    console.print(views.summary(result))
    stopped = result["stats"].get("stopped_by")
    if stopped == "signal":
        console.print("stopped by Ctrl-C; state saved.", style="dim")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
