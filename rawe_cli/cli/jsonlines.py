"""`--json` of the long-running commands: JSON Lines on stdout, one object per event.

Every object has `event` (`log`, `decision`, `proposal`, `heartbeat`, `stopped`) and `time`
(Unix seconds, UTC); log lines carry `level` and `message`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from rawe_cli.cli.context import G
from rawe_cli.ui.lines import NAMES, level_of


class JsonLines:
    """A `say(line)` callable that writes `{"event": "log", ...}`, plus `event(...)`."""

    def __init__(self) -> None:
        self.also: Callable[[str], None] | None = None
        self.file = G.log_file
        self.level = G.level
        self.held = False  # see Lines.held

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
        sys.stdout.flush()

    def event(self, kind: str, **fields: Any) -> None:
        doc = {"event": kind, "time": round(time.time(), 3), **fields}
        sys.stdout.write(json.dumps(doc, allow_nan=False, default=str) + "\n")
        if not self.held:
            sys.stdout.flush()

    def __call__(self, line: str, level: int | None = None) -> None:
        lv = level_of(line) if level is None else level
        if self.file is not None and lv >= G.file_level:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            self.file.write(f"{stamp}Z {NAMES.get(lv, 'INFO'):<7} {line}\n")
            if not self.held:
                self.file.flush()
        if lv >= self.level:
            self.event("log", level=NAMES.get(lv, "INFO").lower(), message=line)
