"""`rawe weights` and `rawe decisions`: what the collective has learned and done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from rawe_cli.cli.options import (
    DEFAULT_REDIS_URL,
    ConfigOpt,
    JsonOpt,
    NamespaceOpt,
    RedisUrlOpt,
    ShardsOpt,
    WatchOpt,
    settings_from,
)
from rawe_cli.errors import UsageError


def _show(fetch: Callable[[], Any], render: Callable[[Any, int], Any], json_out: bool,
          watch: bool, empty: str) -> None:
    import asyncio
    import json

    from rich.console import Console

    if json_out:
        if watch:
            raise UsageError("--watch and --json do not go together")
        typer.echo(json.dumps(asyncio.run(fetch()), indent=2))
        return
    console = Console()
    if not watch:
        rows = asyncio.run(fetch())
        console.print(render(rows, console.width) if rows else f"nothing yet ({empty})")
        return
    try:
        asyncio.run(_watch(fetch, render, empty, console))
    except KeyboardInterrupt:
        import signal

        from rawe_cli.cli import context

        context.stopped_by(signal.SIGINT)


async def _watch(fetch: Callable[[], Any], render: Callable[[Any, int], Any], empty: str,
                 console: Any) -> None:
    """Refresh every second until Ctrl-C. Redis going away is not the end: the view says so
    and tries again with backoff (1 s doubling to 5 s), and carries on when it is back."""
    import asyncio
    import sys
    import time

    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    from rawe_cli.bus.streams import connection_errors
    from rawe_cli.cli import context
    from rawe_cli.errors import BusUnavailable
    from rawe_cli.ui.lines import clock_stamp

    rows = await fetch()  # a wrong URL or a Redis that is not there: one line, exit 1
    down_since: float | None = None
    problem = ""
    delay = 1.0

    def view() -> Any:
        body = render(rows, console.width) if rows else Text(f"nothing yet ({empty})")
        if down_since is None:
            foot = Text(f"updated {clock_stamp(time.time(), context.G.tz)}, every 1 s; "
                        "Ctrl-C to stop", style="dim")
        else:
            foot = Text(f"Redis unreachable since {clock_stamp(down_since, context.G.tz)} "
                        f"({problem}); retrying every {delay:g} s, showing the last data",
                        style="bold red")
        return Group(body, foot)

    with Live(view(), console=console, refresh_per_second=2) as live:
        say = context.lines(stream=sys.stderr)  # Live's stderr: lines go above the view
        while True:
            await asyncio.sleep(delay)
            try:
                rows = await fetch()
            except (BusUnavailable, *connection_errors()) as exc:
                if down_since is None:
                    down_since = time.time()
                    say(f"Redis unreachable ({exc.__class__.__name__}); reconnecting with "
                        "backoff")
                problem = exc.__class__.__name__
                delay = min(5.0, delay * 2)
            else:
                if down_since is not None:
                    say(f"Redis reachable again after {time.time() - down_since:.1f} s")
                down_since, delay = None, 1.0
            live.update(view())


def weights(
    redis_url: RedisUrlOpt = DEFAULT_REDIS_URL,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
    shards: ShardsOpt = None,
    json_out: JsonOpt = False,
    watch: WatchOpt = False,
) -> None:
    """Every agent's weight, wins, losses, win rate, realized P&L and last update."""
    from rawe_cli.app.ops import read_agents
    from rawe_cli.bus.keys import Keys
    from rawe_cli.cli.context import G
    from rawe_cli.ui import views

    settings = settings_from(config, namespace=namespace, shards=shards or None)
    keys = Keys(settings.namespace)
    _show(lambda: read_agents(redis_url, keys, shards=settings.shards or 0),
          lambda rows, width: views.agents_table(rows, width=width, tz=G.tz), json_out, watch,
          f"no agents registered under namespace {keys.namespace!r}")


def decisions(
    redis_url: RedisUrlOpt = DEFAULT_REDIS_URL,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-l", help="Newest N decisions.", min=1)
                     ] = 20,
    archived: Annotated[bool, typer.Option("--archived", help="Also the decisions past the "
                                           "ledger retention, from the archive file (the "
                                           "settings' `archive`).")] = False,
    shards: ShardsOpt = None,
    json_out: JsonOpt = False,
    watch: WatchOpt = False,
) -> None:
    """The ledger of collective decisions, newest first."""
    from rawe_cli.app.ops import read_decisions
    from rawe_cli.bus.keys import Keys
    from rawe_cli.cli.context import G
    from rawe_cli.ui import views

    settings = settings_from(config, namespace=namespace, shards=shards or None)
    keys = Keys(settings.namespace)
    path = settings.archive_path() if archived else None
    _show(lambda: read_decisions(redis_url, keys, limit, path, shards=settings.shards or 0),
          lambda rows, width: views.decisions_table(rows, newest_first=False, width=width,
                                                    tz=G.tz), json_out, watch,
          f"no decisions under namespace {keys.namespace!r}")


def register(app: typer.Typer) -> None:
    app.command("weights")(weights)
    app.command("decisions")(decisions)
