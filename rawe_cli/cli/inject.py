"""`rawe inject-signal`: publish hand-made proposals exactly as an agent would."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from rawe_cli.cli.options import (
    DEFAULT_REDIS_URL,
    ConfigOpt,
    JsonOpt,
    NamespaceOpt,
    RedisUrlOpt,
    ShardsOpt,
    settings_from,
)
from rawe_cli.errors import UsageError


def inject_signal(
    asset: Annotated[str, typer.Option("--asset", help="Symbol, e.g. AAPL or BTC/USD.")],
    direction: Annotated[str, typer.Option("--direction", help="long or short.")],
    agent: Annotated[str, typer.Option("--agent", help="A registered agent's name.")
                     ] = "The Balanced Arbitrator",
    size: Annotated[float, typer.Option("--size", help="Fraction of equity, (0, 1].")] = 0.05,
    expected_profit: Annotated[float, typer.Option("--expected-profit")] = 0.01,
    narrative_id: Annotated[str, typer.Option("--narrative-id")] = "manual",
    count: Annotated[int, typer.Option("--count", help="How many proposals.")] = 1,
    register: Annotated[bool, typer.Option("--register", help="Register the agent if it is "
                                           "not known (weight of a new agent).")] = False,
    redis_url: RedisUrlOpt = DEFAULT_REDIS_URL,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
    shards: ShardsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Publish proposals and print their ids (one per line)."""
    import asyncio
    import json

    from rawe_cli.app.ops import inject
    from rawe_cli.bus.keys import Keys
    from rawe_cli.models import Direction

    if direction not in ("long", "short"):
        raise UsageError(f"--direction must be long or short, got {direction!r}")
    if not (math.isfinite(size) and 0 < size <= 1):
        raise UsageError(f"--size must be in (0, 1], got {size}")
    if not math.isfinite(expected_profit):
        raise UsageError("--expected-profit must be finite")
    if not 1 <= count <= 10_000:
        raise UsageError("--count must be between 1 and 10000")
    if not asset.strip():
        raise UsageError("--asset must not be empty")
    settings = settings_from(config, namespace=namespace, shards=shards or None)
    ids = asyncio.run(inject(redis_url, Keys(settings.namespace), asset=asset.strip(),
                             direction=Direction(direction), agent=agent, size=size,
                             expected_profit=expected_profit, narrative_id=narrative_id,
                             count=count, register=register, shards=settings.shards or 0))
    typer.echo(json.dumps(ids) if json_out else "\n".join(ids))


def register(app: typer.Typer) -> None:
    app.command("inject-signal")(inject_signal)
