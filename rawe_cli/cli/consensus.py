"""`rawe consensus`: the consensus engine with broker and portfolio, around a real Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rawe_cli.cli.options import (
    DEFAULT_REDIS_URL,
    BarSizeOpt,
    BrokerOpt,
    ConfigOpt,
    ConfirmLiveOpt,
    LiveOpt,
    NamespaceOpt,
    NoDashboardOpt,
    RedisUrlOpt,
    SchemeOpt,
    ThresholdOpt,
    ThresholdShareOpt,
    WindowOpt,
    settings_from,
)

if TYPE_CHECKING:
    from rawe_cli.app.services import ConsensusService
    from rawe_cli.collective import LedgerEntry
    from rawe_cli.config import Settings
    from rawe_cli.shards import Shard


def consensus(
    redis_url: RedisUrlOpt = DEFAULT_REDIS_URL,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = None,
    scheme: SchemeOpt = None,
    threshold: ThresholdOpt = None,
    threshold_share: ThresholdShareOpt = None,
    window: WindowOpt = None,
    bar_size: BarSizeOpt = None,
    lease_ms: Annotated[int, typer.Option("--lease-ms", help="Lease time: a standby takes "
                                          "over this long after the active engine dies.",
                                          min=500)] = 3000,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after SECONDS.",
                                                   show_default=False)] = None,
    broker: BrokerOpt = "paper",
    live: LiveOpt = False,
    confirm_live: ConfirmLiveOpt = False,
    shard: Annotated[str | None, typer.Option("--shard", help="K/N: run shard K (0-based, 0 "
                                              "to N-1) of N engines; it owns the assets whose "
                                              "crc32 mod N is K and 1/N of the capital "
                                              "(docs/sharding.md).", show_default=False)
                     ] = None,
    no_dashboard: NoDashboardOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON Lines on stdout: one object "
                                           "per decision and per log line, and a summary "
                                           "when it stops (no live view).")] = False,
) -> None:
    """Run the consensus engine: read proposals, decide, trade, learn (one active, others
    stand by)."""
    import asyncio
    import signal
    import sys

    from rich.console import Console

    from rawe_cli.app.services import ConsensusOptions, ConsensusService
    from rawe_cli.brokers.factory import make_broker
    from rawe_cli.cli import context

    settings = settings_from(config, scheme=scheme, threshold=threshold,
                             threshold_share=threshold_share, window=window, tick_seconds=bar_size,
                             namespace=namespace)
    part = _shard(shard, settings)
    console = Console()
    dashboard = not (no_dashboard or json_out) and sys.stdout.isatty()
    if json_out:
        from rawe_cli.cli.jsonlines import JsonLines

        say = JsonLines()
    else:
        # One plain line per event (a decision is one), written straight to stdout: Rich's
        # print costs ~50 us per line, a third of the engine's time at full load
        # (benchmarks/e2e_bench.py).
        say = context.lines(console=not dashboard)
    from rawe_cli.bus.streams import _safe_url

    say(f"settings: {settings}", 10)  # debug (-v)
    say(f"redis {_safe_url(redis_url)}, namespace {settings.namespace}, lease {lease_ms} ms",
        10)
    executor = make_broker(broker, settings, live=live, confirm_live=confirm_live, log=say)
    opts = ConsensusOptions(settings=settings, redis_url=redis_url, lease_ms=lease_ms,
                            duration=duration, broker=executor, shard=part)
    service_type = ConsensusService
    if json_out:
        class JsonConsensus(ConsensusService):
            def _log_decision(self, entry: LedgerEntry) -> None:
                say.event("decision", **entry.to_dict())

        service_type = JsonConsensus

    def main(on_refresh: Callable[[dict[str, Any]], None] | None = None
             ) -> ConsensusService:
        service = service_type(opts, say, on_refresh)

        async def go() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, _stop, service, sig)
            await service.run()

        asyncio.run(go())
        return service

    if dashboard:
        from rawe_cli.cli.live import live_dashboard

        with live_dashboard(console, title="RAWE consensus") as view:
            say.also = view.note

            def refresh(snap: dict[str, Any]) -> None:
                snap["stats"]["signals"] = None  # the agents see the signals, not the engine
                view.refresh(snap)

            service = main(refresh)
    else:
        service = main()
    saved = service.col is not None
    what = "state saved" if saved else "standing by, held nothing: nothing to save"
    if json_out:
        from rawe_cli.app.runtime import snapshot

        doc = snapshot(service.col, service.state, None, decisions=0) if saved else {}
        say.event("stopped", active=saved, saved=saved, stats=doc.get("stats"),
                  portfolio=doc.get("portfolio"))
    elif dashboard:  # the live view is gone: what it showed, in short, and how it ended
        if saved:
            from rawe_cli.app.runtime import snapshot
            from rawe_cli.ui.dashboard import summary

            snap = snapshot(service.col, service.state, None, decisions=None)
            snap["stats"]["signals"] = None
            console.print(summary(snap, console.width, context.G.tz))
        console.print(f"consensus stopped; {what}", highlight=False)
    else:
        say(f"consensus stopped; {what}")


def _shard(spec: str | None, settings: Settings) -> Shard | None:
    """`--shard K/N`, checked against RAWE_SHARDS and the settings' `shards` (a usage
    error, exit 2)."""
    import os

    from rawe_cli.errors import UsageError
    from rawe_cli.shards import budget, parse_shard

    env = os.environ.get("RAWE_SHARDS", "").strip()
    told, where = (int(env), "RAWE_SHARDS") if env.isdigit() and int(env) else (
        settings.shards, "the settings' shards")
    if spec is None:
        if told:
            raise UsageError(f"{where} is {told}: start each engine with --shard K/{told} "
                             f"(K = 0 to {told - 1})")
        return None
    part = parse_shard(spec)
    if told and told != part.count:
        raise UsageError(f"--shard {spec}: {where} is {told}, not {part.count}")
    if "{" in settings.namespace or "}" in settings.namespace:
        raise UsageError(f"--namespace {settings.namespace!r}: a sharded namespace may not "
                         "hold braces (they are its keys' Redis Cluster hash tags)")
    budget(settings, part)  # N larger than max_open_positions: refused now
    return part


def _stop(service: ConsensusService, signum: int) -> None:
    from rawe_cli.cli import context

    context.stopped_by(signum)
    service.stop.set()


def register(app: typer.Typer) -> None:
    app.command("consensus")(consensus)
