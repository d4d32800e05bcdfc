"""`rawe run`: the whole collective in one process."""

from __future__ import annotations

from typing import Annotated, Any

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
    NamespaceOpt,
    NoDashboardOpt,
    PersonalitiesOpt,
    SchemeOpt,
    SeedOpt,
    ThresholdOpt,
    ThresholdShareOpt,
    TimeframeOpt,
    WindowOpt,
    settings_from,
)
from rawe_cli.errors import UsageError


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
    timeframe: TimeframeOpt = None,
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
    namespace: NamespaceOpt = None,
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

    from rawe_cli.app.runtime import RunOptions, run_embedded
    from rawe_cli.bus.streams import _safe_url as safe_url
    from rawe_cli.cli import context
    from rawe_cli.cli.options import agents_from
    from rawe_cli.durations import format_seconds

    if ticks is not None and ticks < 1:
        raise UsageError("--ticks must be at least 1")
    if duration is not None and duration <= 0:
        raise UsageError("--duration must be > 0")
    if speed <= 0:
        raise UsageError("--speed must be > 0")
    settings = settings_from(config, scheme=scheme, seed=seed, threshold=threshold,
                             threshold_share=threshold_share, window=window,
                             tick_seconds=bar_size, namespace=namespace, timeframe=timeframe)
    from rawe_cli.brokers.factory import make_broker
    from rawe_cli.feeds.factory import feed_settings, make_feed

    settings = feed_settings(feed, settings, bar_size=bar_size, timeframe=timeframe)
    chosen = agents_from(personalities, agents, settings.seed)

    dashboard = not (json_out or no_dashboard) and sys.stdout.isatty()
    notes: list[str] = []  # lines said before the live view starts
    say = context.lines(console=not dashboard, stream=sys.stderr if json_out else None,
                        also=(lambda line: notes.append(line)) if dashboard else None)
    source = make_feed(feed, settings, ticks=ticks, fast=fast, speed=speed, log=say)
    executor = make_broker(broker, settings, live=live, confirm_live=confirm_live, log=say)
    opts = RunOptions(settings=settings, personalities=chosen, ticks=ticks, duration=duration,
                      fast=fast, speed=speed, redis_url=redis_url, broker=executor,
                      feed=source)

    if json_out:
        result = asyncio.run(run_embedded(opts))
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
        _stopped(result)
        return

    from rich.console import Console

    from rawe_cli.ui.dashboard import summary

    console = Console()
    say.debug(f"settings: {settings}")
    say.debug(f"bus: {safe_url(redis_url) if redis_url else 'embedded (fakeredis)'}, "
              f"broker {broker}, feed {feed}")
    if not dashboard:
        line = (f"bar size {format_seconds(settings.bar_seconds)}, window {settings.window} "
                f"({format_seconds(settings.window.seconds(settings.bar_seconds))}), "
                f"scheme {settings.scheme}")
        result = asyncio.run(run_embedded(opts, log=say, on_start=lambda: say(line)))
    else:
        from rawe_cli.cli.live import live_dashboard

        with live_dashboard(console, ticks_total=ticks) as view:
            for line in notes:
                view.note(line)
            say.also = view.note
            result = asyncio.run(run_embedded(opts, on_refresh=view.refresh, log=say))
    console.print(summary(result, console.width, context.G.tz,
                          more_hint="; `rawe run --json` lists every agent"))
    stopped = result["stats"].get("stopped_by")
    if stopped == "signal":
        import signal

        by = "Ctrl-C" if result["stats"].get("signal") == signal.SIGINT else "SIGTERM"
        where = (f"; state saved in Redis ({safe_url(redis_url)})" if redis_url is not None
                 else " (the embedded store lives in memory: nothing was saved)")
        console.print(f"stopped by {by}{where}", style="dim", highlight=False)
    _stopped(result)


def _stopped(result: dict[str, Any]) -> None:
    from rawe_cli.cli import context

    sig = result["stats"].get("signal")
    if sig is not None:
        context.stopped_by(int(sig))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
