"""The live view of `rawe run` and `rawe consensus`: Rich's Live on the alternate screen.

The loop hands a snapshot to `refresh` (at most 4 a second); the view keeps the bounded
history (equity, weights, recent lines) and renders the dashboard for the terminal's size
at every frame, so a resized terminal gets a layout of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from rawe_cli.cli.context import G
from rawe_cli.ui.dashboard import Dashboard, History


@dataclass(slots=True)
class LiveView:
    refresh: Callable[[dict[str, Any]], None]
    note: Callable[[str], None]
    history: History


@contextmanager
def live_dashboard(console: Console, *, ticks_total: int | None = None,
                   title: str | None = None) -> Iterator[LiveView]:
    from rich.live import Live

    from rawe_cli.ui.lines import clock_stamp

    history = History()

    def note(line: str) -> None:
        import time

        history.note(f"{clock_stamp(time.time(), G.tz)} {line}")

    with Live(console=console, screen=True, refresh_per_second=4,
              redirect_stdout=False, redirect_stderr=False) as live:
        def refresh(snap: dict[str, Any]) -> None:
            if ticks_total:
                snap["ticks_total"] = ticks_total
            if title:
                snap["title"] = title
            history.update(snap)
            live.update(Dashboard(snap, history.frozen(), G.tz))

        yield LiveView(refresh, note, history)
