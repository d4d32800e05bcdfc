"""Pure builders of Rich renderables from plain snapshots (dicts). No I/O, no loops."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rawe_cli.durations import format_seconds


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def short_time(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def short_name(name: str) -> str:
    """'The Momentum Chaser #2' -> 'Chaser #2': the last word is enough to tell them apart."""
    base, _, variant = name.partition(" #")
    word = base.split()[-1] if base.split() else base
    return f"{word} #{variant}" if variant else word


def money(x: float | None) -> Text:
    if x is None:
        return Text("-", style="dim")
    style = "green" if x > 0 else "red" if x < 0 else ""
    return Text(f"{x:+,.2f}", style=style)


def agents_table(agents: list[dict[str, Any]], title: str = "Agents") -> Table:
    t = Table(title=title, expand=True, title_justify="left")
    t.add_column("agent")
    t.add_column("personality", style="dim")
    t.add_column("weight", justify="right")
    t.add_column("wins", justify="right")
    t.add_column("losses", justify="right")
    t.add_column("win rate", justify="right")
    t.add_column("realized P&L", justify="right")
    t.add_column("updated", style="dim")
    for a in sorted(agents, key=lambda a: -a["weight"]):
        rate = a.get("win_rate")
        t.add_row(
            a["name"],
            a.get("personality", ""),
            f"{a['weight']:.3f}",
            str(a["wins"]),
            str(a["losses"]),
            "-" if rate is None else f"{rate:.0%}",
            money(a["pnl"]),
            fmt_time(a.get("updated")) if a.get("updated") else "-",
        )
    return t


_STATUS_STYLE = {"open": "cyan", "closed": "", "pending": "yellow", "skipped": "dim",
                 "rejected": "red", "flattened": "magenta"}


def decisions_table(decisions: list[dict[str, Any]], title: str = "Collective decisions",
                    newest_first: bool = True) -> Table:
    t = Table(title=title, expand=True, title_justify="left")
    t.add_column("time", style="dim", no_wrap=True)
    t.add_column("asset", no_wrap=True)
    t.add_column("dir")
    t.add_column("size", justify="right")
    t.add_column("long", justify="right")
    t.add_column("short", justify="right")
    t.add_column("agents", no_wrap=True)
    t.add_column("status", no_wrap=True)
    t.add_column("order", style="dim", no_wrap=True)
    t.add_column("P&L", justify="right", no_wrap=True)
    rows = list(reversed(decisions)) if newest_first else decisions
    for d in rows:
        style = "green" if d["direction"] == "long" else "red"
        status = d["status"] + (f" ({d['exit_reason']})" if d.get("exit_reason") else "")
        t.add_row(
            short_time(d["timestamp"]),
            d["asset"],
            Text(d["direction"], style=style),
            f"{d['size']:.3f}",
            f"{d['long_weight']:.2f}",
            f"{d['short_weight']:.2f}",
            "\n".join(short_name(a) for a in d["agents"]),
            Text(status, style=_STATUS_STYLE.get(d["status"], "")),
            d.get("order_status", ""),
            money(d.get("pnl")),
        )
    return t


def portfolio_panel(pf: dict[str, Any]) -> Panel:
    head = Table.grid(padding=(0, 2))
    for _ in range(5):
        head.add_column()
    head.add_row("equity", f"{pf['equity']:,.2f}", "cash", f"{pf['cash']:,.2f}", "")
    head.add_row("realized", money(pf["realized_pnl"]), "unrealized",
                 money(pf["unrealized_pnl"]), f"fees {pf['fees']:,.2f}")
    pos = Table(expand=True, box=None)
    for col in ("asset", "dir", "qty", "entry", "mark", "unrealized"):
        pos.add_column(col, justify="left" if col in ("asset", "dir") else "right")
    for p in pf["open_positions"]:
        pos.add_row(p["asset"], p["direction"], f"{p['qty']:.4f}", f"{p['entry_price']:.2f}",
                    f"{p['mark']:.2f}", money(p["unrealized_pnl"]))
    body = Group(head, Text(f"open positions: {len(pf['open_positions'])}   closed: "
                            f"{pf['closed_positions']}", style="bold"), pos)
    return Panel(body, title="Portfolio", title_align="left")


def header(snap: dict[str, Any]) -> Text:
    s = snap["stats"]
    ticks = f"{s['ticks']}" + (f"/{snap['ticks_total']}" if snap.get("ticks_total") else "")
    bar = f"  bar {format_seconds(s['bar_seconds'])}" if s.get("bar_seconds") else ""
    return Text.assemble(
        ("RAWE collective ", "bold"),
        f"tick {ticks}{bar}  event time {fmt_time(s['event_time'])}  ",
        ("regime ", "dim"), (snap.get("regime") or "-", "bold"),
        f"  signals {s['signals']}  proposals {s['proposals']}  decisions {s['decisions']}"
        f"  closed {s['closed_positions']}",
    )


def dashboard(snap: dict[str, Any]) -> Layout:
    layout = Layout()
    layout.split_column(
        Layout(header(snap), size=1),
        Layout(agents_table(snap["agents"]), name="agents", size=len(snap["agents"]) + 5),
        Layout(name="bottom"),
    )
    layout["bottom"].split_row(
        Layout(decisions_table(snap["decisions"]), ratio=3),
        Layout(portfolio_panel(snap["portfolio"]), ratio=2),
    )
    return layout


def summary(snap: dict[str, Any]) -> Group:
    s = snap["stats"]
    pf = snap["portfolio"]
    closed = [d for d in snap["decisions"] if d.get("pnl") is not None]
    wins = sum(1 for d in closed if d["pnl"] > 0)
    lines = Text.assemble(
        ("Summary  ", "bold"),
        f"{s['ticks']} bars"
        + (f" of {format_seconds(s['bar_seconds'])}" if s.get("bar_seconds") else "")
        + f", {s['signals']} signals, {s['proposals']} proposals, "
        f"{s['decisions']} decisions, {len(closed)} closed ({wins} won)\n",
        "equity ", f"{pf['equity']:,.2f}", "  realized ", money(pf["realized_pnl"]),
        "  unrealized ", money(pf["unrealized_pnl"]), f"  fees {pf['fees']:,.2f}",
        f"  open positions {len(pf['open_positions'])}",
    )
    return Group(agents_table(snap["agents"], title="Agents (final)"), lines)
