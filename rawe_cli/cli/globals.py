"""The root options applied, `.env` loading, and Click's usage errors as one line."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rawe_cli.cli.context import G
from rawe_cli.errors import UsageError
from rawe_cli.ui.lines import DEBUG, LEVELS, WARNING

# Words people type for a command that is an option here.
OPTION_WORDS = {"version": "--version", "help": "--help"}
DOTENV_OFF = "RAWE_NO_DOTENV"


def parse_tz(name: str) -> Any:  # -> tzinfo
    from datetime import UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz: unknown time zone {name!r} (an IANA name such as "
                         "Europe/Berlin or America/New_York, or UTC)") from None


def apply(*, verbose: int, quiet: bool, log_level: str | None, log_file: Path | None,
          tz: str | None) -> None:
    if verbose and quiet:
        raise UsageError("-v and -q do not go together")
    level = None
    if log_level is not None:
        level = LEVELS.get(log_level.strip().lower())
        if level is None:
            raise UsageError(f"--log-level must be one of {', '.join(LEVELS)}, got "
                             f"{log_level!r}")
    base = level if level is not None else LEVELS["info"]
    G.file_level = base
    G.level = DEBUG if verbose else WARNING if quiet else base
    if tz:
        G.tz = parse_tz(tz)
    if log_file is not None:
        if log_file.is_dir():
            raise UsageError(f"--log-file {log_file}: is a directory")
        parent = log_file.parent if str(log_file.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"--log-file {log_file}: directory {parent} does not exist")
        try:
            G.log_file = log_file.open("a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--log-file {log_file}: cannot write: {exc.strerror}") from None
        G.log_path = log_file


def load_dotenv() -> str | None:
    """Read `.env` from the working directory (or a parent) into the environment; variables
    already set win. RAWE_NO_DOTENV=1 turns it off. Returns the file read, if any."""
    if os.environ.get(DOTENV_OFF):
        return None
    import dotenv

    path = dotenv.find_dotenv(usecwd=True)
    if not path:
        return None
    try:
        dotenv.load_dotenv(path, override=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # unreadable: `rawe config show` says so
    os.environ.setdefault("RAWE_DOTENV_LOADED", path)
    return path


@dataclass(frozen=True, slots=True)
class ClickErrors:
    ClickException: type[Exception]
    NoArgsIsHelpError: type[Exception]
    Abort: type[BaseException]


def click_error() -> ClickErrors:
    """Click's exception classes (Typer vendors Click since 0.2x; older ones import it)."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - Typer with Click as a dependency
        from click import exceptions  # type: ignore[no-redef]
    from typer import Abort

    no_args = getattr(exceptions, "NoArgsIsHelpError", None)
    return ClickErrors(exceptions.ClickException,
                       no_args if no_args is not None else _Never, Abort)


class _Never(Exception):
    """Stands for an exception class this Click version does not have."""


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def usage_line(exc: Any) -> str:
    """One line from a Click error, with a hint: a close command, option, or the help."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "rawe"
    m = re.match(r"No such command '([^']*)'", message)
    if m is not None and ctx is not None:
        word = m.group(1)
        commands = sorted(getattr(ctx.command, "commands", {}))
        if word.lower() in OPTION_WORDS:
            hint = f"did you mean 'rawe {OPTION_WORDS[word.lower()]}'?"
        else:
            close = difflib.get_close_matches(word, commands, n=2)
            hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
                    else f"commands: {', '.join(commands)}")
        return f"no such command {word!r}; {hint} (see 'rawe --help')"
    message = re.sub(r"\s*Did you mean [^?]*\?", "", message)
    hint = ""
    m = re.match(r"No such option: (\S+)", message)
    if m is not None and ctx is not None:
        opts = sorted({o for p in ctx.command.params for o in p.opts + p.secondary_opts})
        close = difflib.get_close_matches(m.group(1), opts, n=2)
        message = f"no such option: {m.group(1)}"
        if close:
            hint = f" (did you mean {' or '.join(close)}?)"
    message = re.sub(r"\s*\(Possible options:[^)]*\)", "", message)
    return f"{_lower_first(message.rstrip('.'))}{hint}; see '{path} --help'"
