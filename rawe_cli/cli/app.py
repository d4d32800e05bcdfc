"""The `rawe` command. Heavy imports live inside the commands, so --help stays fast.

Exit codes: 0 done; 1 a runtime error (a file that does not validate, Redis or Alpaca
unreachable or refusing); 2 a usage error (an unknown command or option, a bad option
value, options that do not go together); 130 stopped by Ctrl-C (143 by SIGTERM), after a
clean stop. Every error is one line on stderr, `rawe: error: ...`, with a hint.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from rawe_cli import __version__
from rawe_cli.cli import context
from rawe_cli.errors import RaweError, UsageError

app = typer.Typer(
    name="rawe",
    help="RAWE: a collective of narrative-reading trading agents that trade by weighted "
    "consensus.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
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
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, show_default=False,
                                         help="More log lines (debug level).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on "
                                        "the console (the log file keeps its level).")
                     ] = False,
    log_level: Annotated[str | None, typer.Option(
        "--log-level", envvar="RAWE_LOG_LEVEL", show_default=False,
        help="debug, info, warning or error, for the console and the log file "
        "[default: info].")] = None,
    log_file: Annotated[Path | None, typer.Option(
        "--log-file", envvar="RAWE_LOG_FILE", show_default=False,
        help="Also append the log lines, with UTC timestamps and levels, to FILE.")] = None,
    tz: Annotated[str | None, typer.Option(
        "--tz", envvar="RAWE_TZ", show_default=False,
        help="Show times in this time zone (IANA name, e.g. Europe/Berlin) [default: UTC]; "
        "stored times and JSON stay UTC.")] = None,
) -> None:
    """RAWE: agents read narratives, vote, and trade only as a collective."""
    from rawe_cli.cli.globals import apply

    apply(verbose=verbose, quiet=quiet, log_level=log_level, log_file=log_file, tz=tz)


def _register() -> None:
    from rawe_cli.cli import (
        agents,
        backtest,
        configcmd,
        consensus,
        data,
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
    configcmd.register(app)
    data.register(app)


_register()


def _fail(message: str, code: int) -> None:
    print(f"rawe: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line per error, the documented exit code, never a traceback."""
    from rawe_cli.cli.globals import click_error, load_dotenv

    context.G.reset()
    load_dotenv()
    clicks = click_error()
    try:
        code = app(args=argv, prog_name="rawe", standalone_mode=False)
    except clicks.NoArgsIsHelpError as exc:  # `rawe` alone: the help, as asked
        typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(0)
    except clicks.ClickException as exc:
        from rawe_cli.cli.globals import usage_line

        _fail(usage_line(exc), exc.exit_code)
    except clicks.Abort:
        print("rawe: interrupted", file=sys.stderr)
        sys.exit(130)
    except UsageError as exc:
        _fail(str(exc), 2)
    except RaweError as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        print("rawe: interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(code, int) and code:
        if code == 130:
            print("rawe: interrupted", file=sys.stderr)
        sys.exit(code)
    if context.G.signal is not None:
        sys.exit(128 + context.G.signal)
