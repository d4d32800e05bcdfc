"""`rawe tune`: walk-forward calibration of the personalities and collective settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from rawe_cli.cli.options import (
    AgentsOpt,
    ConfigOpt,
    JsonOpt,
    PersonalitiesOpt,
    SchemeOpt,
    settings_from,
)
from rawe_cli.errors import UsageError

DEFAULT_TICKS = 5000
METRIC_ROWS: tuple[tuple[str, str], ...] = (
    ("total return", "total_return"),
    ("annualised Sharpe", "sharpe"),
    ("annualised Sortino", "sortino"),
    ("max drawdown", "max_drawdown"),
    ("win rate", "win_rate"),
    ("trades (closed)", "trades"),
    ("exposure", "exposure"),
    ("ticks", "ticks"),
)


def _check_options(data: Path | None, scenario: str | None, bar_size: str | None,
                   ticks: int | None, train_fraction: float, trials: int,
                   workers: int | None, min_trades: int, out: Path) -> None:
    from rawe_cli.app import tune as tn
    if data is not None and scenario is not None:
        raise UsageError("use --data DIR or --scenario NAME, not both")
    if data is None and scenario is None:
        raise UsageError("give --data DIR (recorded history) or --scenario NAME (a synthetic "
                        "world)")
    if data is not None and bar_size is not None:
        raise UsageError("--bar-size is for a synthetic world; replay data has its own bar size")
    tn.check_fraction(train_fraction)
    if trials < 1:
        raise UsageError("--trials must be at least 1")
    if ticks is not None and ticks < 1:
        raise UsageError("--ticks must be at least 1")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    if min_trades < 0:
        raise UsageError("--min-trades must be at least 0")
    tn.check_out(out)


def _progress(json_out: bool, label: str, trials: int, workers: int) -> Any:
    """A Rich progress bar on a terminal's stderr; else one line (none with --json)."""
    from rawe_cli.cli.progress import progress_or_line

    return progress_or_line(json_out, f"tune: {label}: {trials} trials on {workers} workers ...")


def _cell(key: str, value: Any) -> str:
    from rawe_cli.ui.backtest_views import num, pct

    if value is None:
        return "-"
    if key in ("total_return",):
        return pct(value)
    if key == "max_drawdown":
        return pct(value).lstrip("+")
    if key in ("win_rate", "exposure"):
        return f"{value:.1%}"
    if key in ("trades", "ticks"):
        return f"{value:,}"
    return num(value)


def _table(doc: dict[str, Any], title: str) -> Any:
    from rich.table import Table

    columns = (("tuned, train", "train"), ("tuned, test", "test"),
               ("untuned, train", "baseline_train"), ("untuned, test", "baseline_test"))
    t = Table(title=title, title_justify="left")
    t.add_column("metric", style="bold")
    for head, _ in columns:
        t.add_column(head, justify="right")
    for name, key in METRIC_ROWS:
        t.add_row(name, *(_cell(key, doc[part]["metrics"].get(key)) for _, part in columns))
    return t


def tune(
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Where to write the tuned personalities (YAML); tuned settings go "
        "beside it as <stem>.settings.yaml.", show_default=False)],
    data: Annotated[Path | None, typer.Option(
        "--data", help="Directory with prices.csv and narratives.jsonl.",
        show_default=False)] = None,
    scenario: Annotated[str | None, typer.Option(
        "--scenario", help="Synthetic world instead of --data: regime-switching, momentum, "
        "reversal, noise, slow or weak.", show_default=False)] = None,
    bar_size: Annotated[str | None, typer.Option(
        "--bar-size", help="Bar size of the synthetic world (5s, 1m, 5m, 1h, 1d) [settings "
        "default: tick_seconds].", show_default=False)] = None,
    ticks: Annotated[int | None, typer.Option(
        "--ticks", help=f"Ticks (bars) in all (synthetic default {DEFAULT_TICKS}; with --data: "
        "the first N, default all).", show_default=False)] = None,
    train_fraction: Annotated[float, typer.Option(
        "--train-fraction", help="Share of the ticks, from the start, that the search sees; "
        "the rest is the held-out test part.")] = 0.6,
    trials: Annotated[int, typer.Option("--trials", help="Parameter sets to try.")] = 50,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Worker processes, and trials per batch [default: one per core]. "
        "Same --seed and --workers, same output.", show_default=False)] = None,
    min_trades: Annotated[int, typer.Option(
        "--min-trades", help="Train trades a trial needs not to be penalised.")] = 20,
    space: Annotated[str, typer.Option(
        "--space", help="What to search: collective (shared multipliers of every agent's "
        "horizon, stops, targets, cut-off and size, plus the collective's settings) or agents "
        "(every agent's own fields: many more dimensions, needs many more trials).")
    ] = "collective",
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of the synthetic world, the agents' variants and the search "
        "[settings default: 7].", show_default=False)] = None,
    scheme: SchemeOpt = None,
    agents: AgentsOpt = 5,
    personalities: PersonalitiesOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Search personalities and collective settings on the first part of the data; report
    them on the rest (walk-forward), beside the untuned ones."""
    import json

    from rich.console import Console

    from rawe_cli.app import tune as tn
    from rawe_cli.cli.options import agents_from

    _check_options(data, scenario, bar_size, ticks, train_fraction, trials, workers,
                   min_trades, out)
    settings = settings_from(config, scheme=scheme, seed=seed, tick_seconds=bar_size)
    chosen = agents_from(personalities, agents, settings.seed)
    source = tn.load_source(data, scenario, ticks, settings, DEFAULT_TICKS)
    tn.split_ticks(source.ticks, train_fraction)  # too few ticks: one line, before the pool
    w = workers or os.cpu_count() or 1
    if space not in tn.SPACES:
        raise UsageError(f"--space must be one of {', '.join(tn.SPACES)}, got {space!r}")
    options = tn.TuneOptions(train_fraction, trials, settings.seed, w, min_trades, space)
    base = tn.Base(settings, tuple(chosen), source.bar_seconds, source.sessions)

    progress = _progress(json_out, source.label, trials, w)
    if progress is None:
        result = tn.tune(source.ticks, base, options)
    else:
        with progress:
            task = progress.add_task("tune", total=trials + 3)

            def on_trial(done: tn.TrialDone) -> None:
                best = "-" if done.best_value <= -1 else f"{done.best_value:+.2%}"
                progress.update(task, advance=1,
                                description=f"trial {done.number + 1}/{trials}, best {best}")

            def on_final() -> None:
                progress.update(task, advance=1, description="best and untuned on test")

            result = tn.tune(source.ticks, base, options, on_trial, on_final)

    out_path, settings_file = tn.write_outputs(result, out, source.label)
    doc = tn.to_dict(result, out_path, settings_file, source.info)
    if json_out:
        typer.echo(json.dumps(doc, indent=2, sort_keys=True, allow_nan=False))
        return
    console = Console() if Console().is_terminal else Console(width=130)
    split = doc["split"]
    console.print(f"rawe tune: {source.label}", highlight=False)
    console.print(f"train: {split['train_ticks']:,} ticks to {split['train_end']}; test: "
                  f"{split['test_ticks']:,} ticks from {split['test_start']}", highlight=False)
    console.print(_table(doc, f"best of {trials} trials: trial {result.search.best_number}"))
    if result.search.best_value < -1:
        console.print(f"note: no trial made {min_trades} closed train trades (--min-trades); "
                      "the one written is the one that traded most", highlight=False)
    console.print(f"personalities: {out_path}", highlight=False)
    console.print(f"settings: {settings_file or 'unchanged (none written)'}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
