"""`rawe data download`: Alpaca history (bars, news) into a directory `rawe backtest --data`
and `rawe tune --data` replay."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from rawe_cli.cli.options import ConfigOpt

data_app = typer.Typer(help="Market data for the lab: download Alpaca history.",
                       no_args_is_help=True)


@data_app.command("download")
def download(
    symbols: Annotated[str, typer.Option(
        "--symbols", help="Comma-separated symbols: stocks (AAPL) and crypto pairs (BTC/USD).",
        show_default=False)],
    start: Annotated[str, typer.Option(
        "--start", help="First day (2025-01-01, UTC) or an ISO-8601 time.",
        show_default=False)],
    end: Annotated[str, typer.Option(
        "--end", help="Last day, included (2025-03-31), or an ISO-8601 time (excluded).",
        show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", help="Directory for prices.csv and narratives.jsonl (created; a second "
        "run fetches only what it lacks).", show_default=False)],
    timeframe: Annotated[str, typer.Option(
        "--timeframe", help="Bar size: 1Min, 5Min, 15Min, 30Min, 1Hour or 1Day.")] = "5Min",
    news: Annotated[bool, typer.Option(
        "--news", help="Also the news of the symbols, grouped into narratives.")] = False,
    feed: Annotated[str, typer.Option(
        "--feed", help="Stock data feed: iex (free) or sip (needs a subscription).")] = "iex",
    config: ConfigOpt = None,
) -> None:
    """Download Alpaca bars (and news) into a replay directory, with a progress bar."""
    from rawe_cli.cli.options import settings_from
    from rawe_cli.cli.progress import progress_or_line
    from rawe_cli.feeds import download as dl

    settings = settings_from(config)
    req = dl.make_request(symbols, timeframe, start, end, feed, news, time.time())
    progress = progress_or_line(False, f"download: {', '.join(req.symbols)} {timeframe} "
                                f"into {out} ...")
    task: Any = None

    def on_plan(n: int) -> None:
        nonlocal task
        if progress is not None:
            task = progress.add_task("download", total=max(1, n))

    def on_progress(done: int, what: str) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=done, description=what)

    def run() -> dl.Report:
        return dl.download(req, out, sentiment=settings.sentiment, on_plan=on_plan,
                           on_progress=on_progress)

    if progress is not None:
        with progress:
            report = run()
    else:
        report = run()
    for line in dl.summary_lines(report, out):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
