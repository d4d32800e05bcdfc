"""`rawe backtest`: replay history (or a synthetic world) through the collective's core."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rawe_cli.cli import context
from rawe_cli.cli.options import (
    AgentsOpt,
    BarSizeOpt,
    ConfigOpt,
    JsonOpt,
    PersonalitiesOpt,
    SchemeOpt,
    SeedOpt,
    ThresholdOpt,
    ThresholdShareOpt,
    WindowOpt,
    settings_from,
)
from rawe_cli.errors import UsageError

DEFAULT_TICKS = 5000


def backtest(
    data: Annotated[Path | None, typer.Option(
        "--data", help="Directory with prices.csv and narratives.jsonl to replay.",
        show_default=False)] = None,
    scenario: Annotated[str | None, typer.Option(
        "--scenario", help="Synthetic world instead of --data: regime-switching (default), "
        "momentum, reversal or noise.", show_default=False)] = None,
    seed: SeedOpt = None,
    ticks: Annotated[int | None, typer.Option(
        "--ticks", help=f"Ticks to run (synthetic default {DEFAULT_TICKS}; with --data: the "
        "first N timestamps, default all).", show_default=False)] = None,
    scheme: SchemeOpt = None,
    agents: AgentsOpt = 5,
    personalities: PersonalitiesOpt = None,
    config: ConfigOpt = None,
    threshold: ThresholdOpt = None,
    threshold_share: ThresholdShareOpt = None,
    window: WindowOpt = None,
    bar_size: BarSizeOpt = None,
    compare: Annotated[bool, typer.Option(
        "--compare", help="Run every scheme and every agent alone on the same data; best "
        "total return first.")] = False,
    json_out: JsonOpt = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Save the equity curve and agents' weights to FILE; the extension "
        "picks the format (.png, .svg, .pdf, .jpg; needs matplotlib).", show_default=False,
        metavar="FILE")] = None,
) -> None:
    """Replay history through the same core as `rawe run`, in event time, and report."""
    import json

    from rich.console import Console

    from rawe_cli.app import backtest as bt
    from rawe_cli.cli.options import agents_from
    from rawe_cli.config import SCHEMES
    from rawe_cli.durations import format_seconds
    from rawe_cli.ui import backtest_views as bv

    if data is not None and scenario is not None:
        raise UsageError("use --data DIR or --scenario NAME, not both")
    if ticks is not None and ticks < 1:
        raise UsageError("--ticks must be at least 1")
    plot_format = None
    if plot is not None:
        from rawe_cli.ui.plot import check_plot_target

        plot_format = check_plot_target(plot)
    settings = settings_from(config, scheme=scheme, seed=seed, threshold=threshold,
                             threshold_share=threshold_share, window=window,
                             tick_seconds=bar_size)
    chosen = agents_from(personalities, agents, settings.seed)

    source: dict[str, Any]
    if data is not None:
        from rawe_cli.feeds import replay

        loaded = replay.load(data)
        tick_list = loaded.ticks[:ticks] if ticks is not None else loaded.ticks
        total = len(tick_list)
        bar_seconds = loaded.bar_seconds
        sessions = loaded.sessions
        source = {"data": str(data), "bars": loaded.bars, "events": loaded.events,
                  "symbols": list(loaded.symbols), "ticks": total, "bar_seconds": bar_seconds,
                  "events_after_last_bar": loaded.dropped_events,
                  "calendar": loaded.calendar}
        notes = loaded.notes()
        if notes:
            source["notes"] = notes
            for note in notes:
                typer.echo(f"rawe: note: {note}", err=True)
        label = (f"data {data} ({len(loaded.symbols)} symbols, {total:,} bars of "
                 f"{format_seconds(bar_seconds)})")

        def make_ticks() -> Any:
            return tick_list
    else:
        from rawe_cli.app.runtime import world_params
        from rawe_cli.feeds.scenarios import DEFAULT_SCENARIO, scenario_params, scenario_ticks

        name = scenario or DEFAULT_SCENARIO
        base = world_params(settings)
        scenario_params(name, base)  # unknown name: one line, before anything runs
        total = ticks or DEFAULT_TICKS
        bar_seconds = settings.bar_seconds
        sessions = None
        source = {"scenario": name, "seed": settings.seed, "ticks": total,
                  "symbols": list(settings.symbols), "bar_seconds": bar_seconds}
        label = (f"scenario {name} seed {settings.seed} ({total:,} bars of "
                 f"{format_seconds(bar_seconds)})")

        def make_ticks() -> Any:
            return scenario_ticks(name, base, total)

    from rawe_cli.cli.progress import progress_or_line

    progress = progress_or_line(json_out, f"backtest: {label} ...")

    runs_count = (len(SCHEMES) + len(chosen)) if compare else 1
    task: Any = None
    run_index = 0

    def on_run(what: str) -> None:  # compare: a new run starts
        nonlocal run_index
        run_index += 1
        if progress is not None:
            progress.update(task, description=f"{what} ({run_index}/{runs_count})",
                            completed=(run_index - 1) * total)

    def on_progress(n: int) -> None:
        check_interrupt()
        if progress is not None:
            progress.update(task, completed=max(0, run_index - 1) * total + n)

    def execute() -> list[bt.BacktestResult]:
        if compare:
            return bt.run_compare(list(make_ticks()), settings, chosen, on_run=on_run,
                                  on_progress=on_progress, bar_seconds=bar_seconds,
                                  sessions=sessions)
        return [bt.run_backtest(make_ticks(), settings, chosen, on_progress=on_progress,
                                bar_seconds=bar_seconds, sessions=sessions)]

    with context.interrupt_checkpoints() as check_interrupt:
        if progress is not None:
            with progress:
                task = progress.add_task("backtest", total=total * runs_count)
                results = execute()
        else:
            results = execute()

    if plot is not None:
        from rawe_cli.ui.plot import save_plot

        learned = [r for r in results if r.scheme in ("hedge", "regime", "meta")]
        weights_run = learned[0] if (compare and learned) else results[0]
        save_plot(plot, results, weights_run, plot_format)

    if json_out:
        if compare:
            doc: dict[str, Any] = {"source": source, "runs": [r.to_dict() for r in results]}
        else:
            doc = {"source": source, **results[0].to_dict()}
        if plot is not None:
            doc["plot"] = str(plot)
        typer.echo(json.dumps(doc, indent=2, sort_keys=True, allow_nan=False))
        return
    out = Console() if Console().is_terminal else Console(width=130)
    if compare:
        out.print(bv.compare_report([r.to_dict() for r in results], label))
    else:
        out.print(bv.report(results[0].to_dict(), label))
    if plot is not None:
        out.print(f"plot saved to {plot}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
