"""The decision archive: final decisions past the ledger retention, one JSON object a line.

Append-only JSON lines, not SQLite or Parquet: the engine only ever appends, readers scan it
whole (`rawe decisions --archived`), and a line is readable with `jq` or `grep`. Lines are
written and flushed to disk before the decisions leave Redis; if the engine stops between
the two, the next one archives them again, so a line may repeat: readers keep the last line
per decision id. A line that does not parse (a torn write at a crash) is skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rawe_cli.collective import LedgerEntry
from rawe_cli.errors import RaweError


def append(path: Path, entries: Iterable[LedgerEntry]) -> int:
    """Append entries and flush them to disk; returns how many were written."""
    lines = [json.dumps(e.to_dict(), separators=(",", ":"), sort_keys=True) + "\n"
             for e in entries]
    if not lines:
        return 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.writelines(lines)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise RaweError(f"{path}: cannot write the decision archive: {exc.strerror}") from None
    return len(lines)


def read(path: Path) -> list[dict[str, Any]]:
    """Every archived decision (the last line per id), oldest first; [] without a file."""
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RaweError(f"{path}: cannot read the decision archive: {exc.strerror}") from None
    by_id: dict[str, dict[str, Any]] = {}
    with fh:
        for line in fh:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if isinstance(d, dict) and isinstance(d.get("id"), str):
                by_id.pop(d["id"], None)
                by_id[d["id"]] = d
    return sorted(by_id.values(), key=lambda d: (d.get("timestamp") or 0, d["id"]))
