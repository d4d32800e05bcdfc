"""`rawe doctor`: one line per check (Redis, Alpaca keys, account, clock, market data, news)."""

from __future__ import annotations

from typing import Annotated

import typer

from rawe_cli.cli.options import ConfigOpt, JsonOpt, RedisUrlOpt


def doctor(
    redis_url: RedisUrlOpt = None,
    no_redis: Annotated[bool, typer.Option("--no-redis", help="Skip the Redis check (an "
                                           "embedded `rawe run` needs no Redis).")] = False,
    config: ConfigOpt = None,
    live: Annotated[bool, typer.Option("--live", help="Check the live account's endpoint "
                                       "instead of paper (reads only).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check that Redis and Alpaca (keys, account, clock, market data, news) answer.

    Prints OK, FAIL or SKIP with the reason for each; exits 1 if a needed check fails (news
    is optional). Reads only: it never sends an order, with or without --live.
    """
    import asyncio

    from rawe_cli.app.doctor import SKIP, Check, check_alpaca, check_redis
    from rawe_cli.bus.streams import DEFAULT_URL
    from rawe_cli.cli.options import settings_from

    settings = settings_from(config)
    checks: list[Check] = []

    def report(check: Check) -> None:
        checks.append(check)
        if not json_out:
            typer.echo(check.line())

    if no_redis:
        report(Check("redis", SKIP, "--no-redis"))
    else:
        report(asyncio.run(check_redis(redis_url or DEFAULT_URL)))
    for check in check_alpaca(settings.symbols, live=live):
        report(check)
    failed = any(c.failed for c in checks)
    if json_out:
        import dataclasses
        import json

        typer.echo(json.dumps({"ok": not failed, "checks": [
            {**dataclasses.asdict(c), "failed": c.failed} for c in checks]}, indent=2))
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
