"""`rawe consensus`: the consensus engine with broker and portfolio, around a real Redis."""

from __future__ import annotations

from typing import Annotated

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
    no_dashboard: NoDashboardOpt = False,
) -> None:
    """Run the consensus engine: read proposals, decide, trade, learn (one active, others
    stand by)."""
    import asyncio
    import signal
    import sys

    from rich.console import Console

    from rawe_cli import views
    from rawe_cli.brokers.factory import make_broker
    from rawe_cli.services import ConsensusOptions, ConsensusService

    settings = settings_from(config, scheme=scheme, threshold=threshold,
                             threshold_share=threshold_share, window=window, tick_seconds=bar_size,
                             namespace=namespace)
    console = Console()
    err = Console(stderr=True)
    dashboard = not no_dashboard and sys.stdout.isatty()

    def say(line: str) -> None:
        if not dashboard:
            # One plain line per event (a decision is one): Rich's print costs ~50 us per
            # line, a third of the engine's time at full load (benchmarks/e2e_bench.py).
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            return
        err.print(line, markup=False, highlight=False, soft_wrap=True)

    executor = make_broker(broker, settings, live=live, confirm_live=confirm_live, log=say)
    opts = ConsensusOptions(settings=settings, redis_url=redis_url, lease_ms=lease_ms,
                            duration=duration, broker=executor)

    async def main(on_refresh=None) -> None:  # type: ignore[no-untyped-def]
        service = ConsensusService(opts, say, on_refresh)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop.set)
        await service.run()

    if dashboard:
        from rich.live import Live

        with Live(console=console, refresh_per_second=4) as live:
            asyncio.run(main(lambda snap: live.update(views.dashboard(snap))))
    else:
        asyncio.run(main())
    say("consensus stopped; state saved")


def register(app: typer.Typer) -> None:
    app.command("consensus")(consensus)
