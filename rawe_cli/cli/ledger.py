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
    WatchOpt,
    settings_from,
)
from rawe_cli.errors import RaweError


def _show(fetch: Callable[[], Any], render: Callable[[Any], Any], json_out: bool,
          watch: bool, empty: str) -> None:
    import asyncio
    import json
    import time

    from rich.console import Console

    if json_out:
        if watch:
            raise RaweError("--watch and --json do not go together")
        typer.echo(json.dumps(asyncio.run(fetch()), indent=2))
        return
    console = Console()
    if not watch:
        rows = asyncio.run(fetch())
        console.print(render(rows) if rows else f"nothing yet ({empty})")
        return
    from rich.live import Live

    with Live(console=console, refresh_per_second=2) as live:
        try:
            while True:
                live.update(render(asyncio.run(fetch())))
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass


def weights(
    redis_url: RedisUrlOpt = DEFAULT_REDIS_URL,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
    json_out: JsonOpt = False,
    watch: WatchOpt = False,
) -> None:
    """Every agent's weight, wins, losses, win rate, realized P&L and last update."""
    from rawe_cli import views
    from rawe_cli.keys import Keys
    from rawe_cli.ops import read_agents

    keys = Keys(settings_from(config, namespace=namespace).namespace)
    _show(lambda: read_agents(redis_url, keys), views.agents_table, json_out, watch,
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
    json_out: JsonOpt = False,
    watch: WatchOpt = False,
) -> None:
    """The ledger of collective decisions, newest first."""
    from rawe_cli import views
    from rawe_cli.keys import Keys
    from rawe_cli.ops import read_decisions

    settings = settings_from(config, namespace=namespace)
    keys = Keys(settings.namespace)
    path = settings.archive_path() if archived else None
    _show(lambda: read_decisions(redis_url, keys, limit, path),
          lambda rows: views.decisions_table(rows, newest_first=False), json_out, watch,
          f"no decisions under namespace {keys.namespace!r}")


def register(app: typer.Typer) -> None:
    app.command("weights")(weights)
    app.command("decisions")(decisions)
