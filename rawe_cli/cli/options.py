"""Shared option declarations (Annotated aliases) and settings assembly for the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file; flags override it.",
                 envvar="RAWE_CONFIG", show_default=False),
]
PersonalitiesOpt = Annotated[
    Path | None,
    typer.Option("--personalities", "-p", help="YAML personalities file (default: shipped).",
                 show_default=False),
]
AgentsOpt = Annotated[
    int, typer.Option("--agents", "-n", help="Number of agents; past the file's end, "
                      "personalities repeat as numbered variants.")
]
SchemeOpt = Annotated[
    str | None,
    typer.Option("--scheme", help="Weighting: majority, winrate, hedge or regime "
                 "[settings default: winrate].", show_default=False),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed of the synthetic world.",
                                             show_default=False)]
ThresholdOpt = Annotated[
    float | None,
    typer.Option("--threshold", help="Absolute consensus threshold [settings default: 3.0].",
                 show_default=False),
]
ThresholdShareOpt = Annotated[
    float | None,
    typer.Option("--threshold-share", help="Relative threshold: share of all registered "
                 "agents' weight (0-1]; overrides --threshold.", show_default=False),
]
WindowOpt = Annotated[
    str | None,
    typer.Option("--window", help="Window of a vote: bars (3b) or time (15s, 5m); a plain "
                 "number is seconds [default: 3b].", show_default=False),
]
BarSizeOpt = Annotated[
    str | None,
    typer.Option("--bar-size", help="Bar size of the synthetic world (or live poll): 5s, 1m, "
                 "5m, 1h, 1d [settings tick_seconds, default 5s]. Replay data has its own.",
                 show_default=False),
]
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
RedisUrlOpt = Annotated[
    str,
    typer.Option("--redis-url", help="Redis URL (env RAWE_REDIS_URL).", envvar="RAWE_REDIS_URL"),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option("--namespace", help="Prefix of every Redis key [settings default: rawe].",
                 envvar="RAWE_NAMESPACE", show_default=False),
]
ShardsOpt = Annotated[
    int | None,
    typer.Option("--shards", help="How many sharded engines the collective has (env "
                 "RAWE_SHARDS; settings `shards`); unset: the count recorded in Redis, else "
                 "not sharded.", envvar="RAWE_SHARDS", show_default=False),
]
WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Refresh live until Ctrl-C.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
NoDashboardOpt = Annotated[
    bool, typer.Option("--no-dashboard", help="Plain log lines instead of the live view.")
]


def settings_from(config: Path | None, **overrides: object):  # -> Settings
    """The settings file (checked to be UTF-8 text first), then the flags over it; a bad
    flag value is a usage error (exit 2)."""
    from rawe_cli.config import load_settings
    from rawe_cli.errors import ConfigError, UsageError
    from rawe_cli.textfile import check_utf8

    if config is not None:
        check_utf8(config, ConfigError)
    settings = load_settings(config)
    try:
        return settings.with_overrides(**overrides)
    except ConfigError as exc:
        raise UsageError(flag_message(str(exc))) from None


FLAG_OF_FIELD = {"tick_seconds": "--bar-size"}


def flag_message(message: str) -> str:
    """"option: field 'scheme': must be ..." -> "--scheme: must be ..." (the flag's name)."""
    import re

    def flag(m: re.Match[str]) -> str:
        name = m.group(1)
        return FLAG_OF_FIELD.get(name, "--" + name.replace("_", "-"))

    return re.sub(r"^option: field '([a-z_]+)'", flag, message)


def personalities_from(path: Path | None):  # -> list[Personality]
    from rawe_cli.config import load_personalities
    from rawe_cli.errors import ConfigError
    from rawe_cli.textfile import check_utf8

    if path is not None:
        check_utf8(path, ConfigError)
    return load_personalities(path)


def agents_from(path: Path | None, count: int, seed: int):  # -> list[Personality]
    """`count` agents from the personalities file; a bad count is a usage error."""
    from rawe_cli.config import pick_agents
    from rawe_cli.errors import ConfigError, UsageError

    personalities = personalities_from(path)
    try:
        return pick_agents(personalities, count, seed)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


# -- where orders go and where prices come from (see brokers/factory.py, feeds/factory.py) --
BrokerOpt = Annotated[
    str,
    typer.Option("--broker", help="Where orders go: paper (built in) or alpaca (an Alpaca "
                 "account, paper trading unless --live; keys from APCA_API_KEY_ID and "
                 "APCA_API_SECRET_KEY)."),
]
FeedOpt = Annotated[
    str,
    typer.Option("--feed", help="Market data: synthetic (the seeded world), alpaca (Alpaca "
                 "bars and news by stream, bars of --timeframe) or alpaca-poll (the same by "
                 "REST, polled every tick_seconds of wall time)."),
]
TimeframeOpt = Annotated[
    str | None,
    typer.Option("--timeframe", help="With --feed alpaca: the bar size, 1Min .. 59Min, "
                 "1Hour .. 23Hour or 1Day [settings timeframe, default 1Min].",
                 show_default=False),
]
LiveOpt = Annotated[
    bool,
    typer.Option("--live", help="With --broker alpaca: trade REAL money on the live account "
                 "(asks to type LIVE first)."),
]
ConfirmLiveOpt = Annotated[
    bool,
    typer.Option("--confirm-live", help="With --live: skip the confirmation prompt (for "
                 "scripts)."),
]
