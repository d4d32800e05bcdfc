"""The long commands' progress: a Rich bar on a terminal's stderr, else one line."""

from __future__ import annotations

from typing import Any


def progress_or_line(json_out: bool, line: str) -> Any:
    """A transient Rich progress bar when stderr is a terminal (None with --json); else
    `line` printed once on stderr (nothing with --json) and None."""
    from rich.console import Console

    err = Console(stderr=True)
    if json_out:
        return None
    if not err.is_terminal:
        err.print(line, highlight=False)
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)
