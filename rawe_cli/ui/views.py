"""Pure builders of Rich renderables from plain snapshots (dicts). No I/O, no loops.

Every table is planned for the width it gets (rawe_cli/ui/columns.py): names shorten, the least
important columns go, numbers are never cut. Times are shown in a display time zone (UTC
unless `--tz`), and every time column says which.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from rich.table import Table
from rich.text import Text

from rawe_cli.ui.columns import Cell, Column, build, plan

WIDE = 200  # the width of a table printed with no width given


def tz_label(tz: tzinfo = UTC) -> str:
    """'UTC', or the zone's abbreviation now ('CET'), for column headers."""
    return "UTC" if tz is UTC else (datetime.now(tz).tzname() or str(tz))


def fmt_time(ts: float | None, tz: tzinfo = UTC, label: bool = True) -> str:
    if ts is None:
        return "-"
    dt = datetime.fromtimestamp(ts, tz)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + (f" {dt.tzname()}" if label else "")


def short_time(ts: float | None, tz: tzinfo = UTC) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, tz).strftime("%H:%M:%S")


def short_name(name: str) -> str:
    """'The Momentum Chaser #2' -> 'Chaser #2': the last word is enough to tell them apart."""
    base, _, variant = name.partition(" #")
    word = base.split()[-1] if base.split() else base
    return f"{word} #{variant}" if variant else word


def name_forms(name: str) -> list[str]:
    """The ways to write a name, longest first: full, without a leading 'The', last word."""
    forms = [name]
    if name.startswith("The "):
        forms.append(name[4:])
    forms.append(short_name(name))
    return forms


_VARIANT = re.compile(r"^(.*?)(?: #(\d+))?$")


def natural_key(name: str) -> tuple[str, int]:
    """Sort key: 'X #10' after 'X #9', 'X' (variant 1) first."""
    m = _VARIANT.match(name)
    assert m is not None
    return m.group(1).lower(), int(m.group(2) or 1)


def money(x: float | None) -> Text:
    if x is None:
        return Text("-", style="dim")
    style = "green" if x > 0 else "red" if x < 0 else ""
    return Text(f"{x:+,.2f}", style=style)


def amount(x: float) -> str:
    return f"{x:,.2f}"


def _forms(values: Sequence[list[str]]) -> list[list[Cell]]:
    """Per-row lists of forms -> per-form lists of cells (rows with fewer forms repeat)."""
    depth = max((len(v) for v in values), default=1)
    return [[v[min(i, len(v) - 1)] for v in values] for i in range(depth)]


def agent_columns(agents: Sequence[dict[str, Any]], tz: tzinfo = UTC,
                  marks: dict[str, Text] | None = None,
                  trends: dict[str, str] | None = None) -> list[Column]:
    """The agents table's columns, most important first in priority (0 = always shown)."""
    marks = marks or {}
    weight: list[Cell] = []
    for a in agents:
        cell = Text(f"{a['weight']:.3f}")
        cell.append_text(marks.get(a["name"], Text(" ")))
        weight.append(cell)
    rate = ["-" if a.get("win_rate") is None else f"{a['win_rate']:.0%}" for a in agents]
    cols = [
        Column("agent", "agent", _forms([name_forms(a["name"]) for a in agents]), cut=True,
               min_width=6),
        Column.of("weight", "weight", weight, justify="right"),
        Column.of("pnl", "P&L", [money(a["pnl"]) for a in agents], justify="right",
                  priority=1),
        Column.of("wl", "won/lost", [f"{a['wins']}/{a['losses']}" for a in agents],
                  justify="right", priority=2),
        Column.of("rate", "win rate", rate, justify="right", priority=3),
    ]
    if trends is not None:
        cols.append(Column.of("trend", "weight trend", [trends.get(a["name"], "")
                                                        for a in agents], priority=4,
                              style="cyan"))
    cols.append(Column.of("votes", "votes", [str(a.get("votes", 0)) for a in agents],
                          justify="right", priority=5))
    # The personality says something only when it is not the name's (manual agents).
    if any(a.get("personality", "") != a["name"].split(" #")[0] for a in agents):
        cols.append(Column.of("personality", "personality",
                              [a.get("personality", "") for a in agents], style="dim",
                              priority=7, cut=True, min_width=8))
    cols.append(Column("updated", f"updated {tz_label(tz)}",
                       _forms([[fmt_time(a["updated"], tz, label=False),
                                short_time(a["updated"], tz)] if a.get("updated") else ["-"]
                               for a in agents]), style="dim", priority=6))
    return cols


_STATUS_STYLE = {"open": "cyan", "closed": "", "pending": "yellow", "skipped": "dim",
                 "rejected": "red", "flattened": "magenta"}
_EXIT_SHORT = {"stop_loss": "stop", "take_profit": "target", "horizon": "horizon",
               "reversed": "reversed"}


def _agents_cell(names: Sequence[str]) -> list[str]:
    """'Chaser, Purist, Contrarian' -> 'Chaser +2' -> '3 agents': whole names only."""
    short = [short_name(n) for n in names]
    if not short:
        return ["-"]
    forms = [", ".join(short)]
    if len(short) > 1:
        forms.append(f"{short[0]} +{len(short) - 1}")
    forms.append(f"{len(short)}")
    return forms


def decision_columns(decisions: Sequence[dict[str, Any]], tz: tzinfo = UTC) -> list[Column]:
    statuses: list[list[str]] = []
    styles: list[str] = []
    for d in decisions:
        st = d["status"]
        reason = d.get("exit_reason")
        styles.append(_STATUS_STYLE.get(st, ""))
        statuses.append([f"{st} ({reason})", f"{st} {_EXIT_SHORT.get(reason, reason)}", st]
                        if reason else [st])
    status_forms = [[Text(str(s), style=styles[i]) for i, s in enumerate(form)]
                    for form in _forms(statuses)]
    return [
        Column.of("time", f"time {tz_label(tz)}", [short_time(d["timestamp"], tz)
                                                   for d in decisions], style="dim"),
        Column.of("asset", "asset", [d["asset"] for d in decisions]),
        Column.of("dir", "dir", [Text(d["direction"], style="green" if d["direction"] == "long"
                                      else "red") for d in decisions]),
        Column.of("size", "size", [f"{d['size']:.3f}" for d in decisions], justify="right",
                  priority=3),
        Column.of("long", "long", [f"{d['long_weight']:.2f}" for d in decisions],
                  justify="right", priority=4),
        Column.of("short", "short", [f"{d['short_weight']:.2f}" for d in decisions],
                  justify="right", priority=4),
        Column("agents", "agents", _forms([_agents_cell(d["agents"]) for d in decisions]),
               priority=5, cut=True, min_width=6),
        Column("status", "status", status_forms, priority=1),
        Column.of("order", "order", [d.get("order_status", "") for d in decisions],
                  style="dim", priority=6),
        Column.of("pnl", "P&L", [money(d.get("pnl")) for d in decisions], justify="right"),
    ]


def agents_table(agents: list[dict[str, Any]], title: str = "Agents", *,
                 width: int | None = None, tz: tzinfo = UTC) -> Table:
    """Every agent, in name order (for `rawe weights`)."""
    rows = sorted(agents, key=lambda a: natural_key(a["name"]))
    return build(plan(agent_columns(rows, tz), width or WIDE), title=title)


def decisions_table(decisions: list[dict[str, Any]], title: str = "Collective decisions",
                    newest_first: bool = True, *, width: int | None = None,
                    tz: tzinfo = UTC) -> Table:
    rows = list(reversed(decisions)) if newest_first else list(decisions)
    return build(plan(decision_columns(rows, tz), width or WIDE), title=title)
