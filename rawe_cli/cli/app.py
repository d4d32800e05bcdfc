"""The `rawe` command. Heavy imports live inside the commands, so --help stays fast."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rawe_cli import __version__
from rawe_cli.errors import RaweError

app = typer.Typer(
    name="rawe",
    help="RAWE: a collective of narrative-reading trading agents that trade by weighted "
    "consensus.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rawe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """RAWE: agents read narratives, vote, and trade only as a collective."""


def _register() -> None:
    from rawe_cli.cli import (
        agents,
        backtest,
        consensus,
        doctor,
        inject,
        ledger,
        personalities,
        run,
        tune,
    )

    run.register(app)
    consensus.register(app)
    agents.register(app)
    inject.register(app)
    ledger.register(app)
    personalities.register(app)
    backtest.register(app)
    doctor.register(app)
    tune.register(app)


_register()


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 1, never a traceback."""
    try:
        app()
    except RaweError as exc:
        print(f"rawe: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("rawe: interrupted", file=sys.stderr)
        sys.exit(130)
