"""Log lines of the long-running commands: a level, a timestamp, an optional log file.

Hand-written around the stream instead of the logging module: `rawe consensus` writes a
line per decision, thousands a second under load, and a logging record costs about 10 us
where this costs well under 1 us (the timestamp is formatted once a second).

Console lines: `12:00:01Z decision d-...` (the time in the display zone, `Z` for UTC, else
its offset). Log-file lines: `2026-05-01T12:00:01.123Z INFO decision d-...`, always UTC.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import TextIO

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
NAMES = {v: k.upper() for k, v in LEVELS.items()}
# What the services say is plain text; these beginnings are the warnings among it.
WARNINGS = ("Redis unreachable", "lost the lease", "fenced", "dead-lettered", "giving up")


def level_of(line: str) -> int:
    return WARNING if line.startswith(WARNINGS) else INFO


def clock_stamp(ts: float, tz: tzinfo = UTC) -> str:
    """'12:00:01Z' in UTC, '14:00:01+02:00' elsewhere: a time of day that says its zone."""
    dt = datetime.fromtimestamp(ts, tz)
    off = dt.strftime("%z")
    zone = "Z" if tz is UTC or off == "+0000" else f"{off[:3]}:{off[3:]}"
    return dt.strftime("%H:%M:%S") + zone


class Lines:
    """A `say(line)` callable: console lines at `level` and above, file lines at `file_level`.

    `console=False`: no console lines (a live view owns the screen; `also` shows them).
    `stamps=False` leaves the console lines bare.
    """

    def __init__(self, stream: TextIO | None = None, *, console: bool = True,
                 level: int = INFO,
                 file: TextIO | None = None, file_level: int = INFO, tz: tzinfo = UTC,
                 stamps: bool = True, also: Callable[[str], None] | None = None) -> None:
        self.stream = (stream if stream is not None else sys.stdout) if console else None
        self.level = level
        self.file = file
        self.file_level = file_level
        self.tz = tz
        self.stamps = stamps
        self.also = also  # e.g. the live view's message line
        self._second = -1
        self._stamp = ""
        self._iso = ""
        # Held (a busy loop that calls `flush` itself, e.g. once per batch): lines are not
        # flushed one by one. A flush is a write(2) each: ~1.3 us a line, at thousands of
        # decision lines a second (benchmarks/e2e_bench.py).
        self.held = False

    def _stamps(self) -> float:
        now = time.time()
        sec = int(now)
        if sec != self._second:
            self._second = sec
            self._stamp = clock_stamp(now, self.tz)
            self._iso = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return now

    def __call__(self, line: str, level: int | None = None) -> None:
        lv = level_of(line) if level is None else level
        now = self._stamps()
        if self.file is not None and lv >= self.file_level:
            ms = int((now - int(now)) * 1000)
            self.file.write(f"{self._iso}.{ms:03d}Z {NAMES.get(lv, 'INFO'):<7} {line}\n")
            if not self.held:
                self.file.flush()
        if self.also is not None and lv >= self.level:
            self.also(line)
        if self.stream is None or lv < self.level:
            return
        self.stream.write(f"{self._stamp} {line}\n" if self.stamps else f"{line}\n")
        if not self.held:
            self.stream.flush()

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
        if self.stream is not None:
            self.stream.flush()

    def debug(self, line: str) -> None:
        self(line, DEBUG)

    def warning(self, line: str) -> None:
        self(line, WARNING)
