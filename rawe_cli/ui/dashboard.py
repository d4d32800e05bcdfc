"""The live dashboard of `rawe run` and `rawe consensus`: a Rich Layout that fits its screen.

`Dashboard(snap, history)` is a renderable that plans itself for the size it is given (80x24
to 200x50 and beyond): a header, the portfolio with an equity sparkline, the agents (fixed
order, movers marked, a weight trend per agent) and the recent decisions. Sections and rows
are capped to the screen, so a run with 1,000 agents draws as fast as one with 5.

`History` is the small, bounded memory of recent frames the command's loop keeps (the
snapshot itself has no past): equity and every agent's weight, resampled to at most
`points` samples over the whole run, and which weights just moved. Pure: no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.layout import Layout
from rich.table import Table
from rich.text import Text

from rawe_cli.durations import format_seconds
from rawe_cli.ui.columns import build, pack, plan
from rawe_cli.ui.views import (
    agent_columns,
    amount,
    decision_columns,
    fmt_time,
    money,
    natural_key,
    short_name,
)

BLOCKS = "▁▂▃▄▅▆▇█"
WIDE = 150  # from this width on, agents and portfolio side by side
MOVED_FRAMES = 8  # a moved weight stays marked this many frames (2 s at 4 frames a second)


def sparkline(values: Sequence[float], width: int) -> str:
    """`values` resampled to at most `width` block characters; a flat series is a rule."""
    if width <= 0 or not values:
        return ""
    if len(values) > width:
        step = (len(values) - 1) / max(1, width - 1)
        values = [values[round(i * step)] for i in range(width)]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        return "─" * len(values)
    return "".join(BLOCKS[min(7, int((v - lo) / (hi - lo) * 8))] for v in values)


def chart(values: Sequence[float], width: int, height: int) -> list[str]:
    """A bar chart of `height` lines (top line first), one column per sample."""
    if height <= 1:
        return [sparkline(values, width)]
    if len(values) > width:
        step = (len(values) - 1) / max(1, width - 1)
        values = [values[round(i * step)] for i in range(width)]
    if not values:
        return [""] * height
    lo, hi = min(values), max(values)
    span = hi - lo
    levels = [((v - lo) / span * (height * 8 - 1) + 1) if span > 0 else 4.0 for v in values]
    lines = []
    for row in range(height - 1, -1, -1):
        base = row * 8
        line = []
        for lv in levels:
            fill = lv - base
            line.append("█" if fill >= 8 else " " if fill <= 0 else BLOCKS[int(fill) - 1])
        lines.append("".join(line))
    return lines


def fit_words(line: str, width: int, style: str = "") -> Text:
    """`line` cut at a word boundary to fit `width` (never inside a number)."""
    if len(line) <= width:
        return Text(line, style=style)
    words, out = line.split(" "), ""
    for w in words:
        if len(out) + len(w) + (1 if out else 0) + 2 > width:
            break
        out = f"{out} {w}" if out else w
    return Text(f"{out} …", style=style)


def agent_key(name: str) -> tuple[int, str]:
    """A fixed order: the shipped personalities first, then their variants #2, #3, ..."""
    base, variant = natural_key(name)
    return variant, base


@dataclass(slots=True)
class History:
    """Bounded memory of the frames: resampled equity and weights, recent weight moves."""

    points: int = 96
    stride: int = 1
    frame: int = 0
    equity: list[float] = field(default_factory=list)
    weights: dict[str, list[float]] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    moved: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (frame, sign)
    widths: dict[str, int] = field(default_factory=dict)  # stable column widths
    notes: deque[str] = field(default_factory=lambda: deque(maxlen=20))  # recent log lines

    def note(self, line: str) -> None:
        self.notes.append(line)

    def update(self, snap: dict[str, Any]) -> None:
        self.frame += 1
        agents = snap["agents"]
        for a in agents:
            name, w = a["name"], a["weight"]
            prev = self.last.get(name)
            if prev is not None and abs(w - prev) > 1e-9:
                self.moved[name] = (self.frame, 1 if w > prev else -1)
            self.last[name] = w
        if self.frame % self.stride:
            return
        self.equity.append(snap["portfolio"]["equity"])
        for a in agents:
            self.weights.setdefault(a["name"], []).append(a["weight"])
        if len(self.equity) > self.points:  # keep the later of each pair: the run fits
            self.equity = self.equity[(len(self.equity) - 1) % 2::2]
            for name, ws in self.weights.items():
                self.weights[name] = ws[(len(ws) - 1) % 2::2]
            self.stride *= 2

    def frozen(self) -> History:
        """A copy to render from another thread (Rich's Live) while this one moves on."""
        return History(self.points, self.stride, self.frame, list(self.equity),
                       {k: list(v) for k, v in self.weights.items()}, dict(self.last),
                       dict(self.moved), self.widths, deque(self.notes, maxlen=20))

    def mark(self, name: str) -> Text:
        got = self.moved.get(name)
        if got is None or self.frame - got[0] >= MOVED_FRAMES:
            return Text(" ")
        return Text("▲", style="bold green") if got[1] > 0 else Text("▼", style="bold red")


def header_items(snap: dict[str, Any], tz: tzinfo = UTC) -> list[Text]:
    s = snap["stats"]
    total = snap.get("ticks_total")
    items = [Text(snap.get("title", "RAWE collective"), style="bold"),
             Text(f"tick {s['ticks']:,}" + (f"/{total:,}" if total else ""))]
    if s.get("bar_seconds"):
        items.append(Text(f"bar {format_seconds(s['bar_seconds'])}"))
    items.append(Text(f"event time {fmt_time(s.get('event_time') or None, tz)}"))
    items.append(Text.assemble(("regime ", "dim"), (snap.get("regime") or "-", "bold")))
    if s.get("signals") is not None:
        items.append(Text(f"signals {s['signals']:,}"))
    items += [Text(f"proposals {s['proposals']:,}"), Text(f"decisions {s['decisions']:,}"),
              Text(f"closed {s['closed_positions']:,}")]
    if s.get("dead_lettered"):
        items.append(Text(f"dead letters {s['dead_lettered']:,}", style="red"))
    return items


def portfolio_items(pf: dict[str, Any]) -> list[Text]:
    return [
        Text.assemble(("equity ", "bold"), (amount(pf["equity"]), "bold")),
        Text(f"cash {amount(pf['cash'])}"),
        Text.assemble("realized ", money(pf["realized_pnl"])),
        Text.assemble("unrealized ", money(pf["unrealized_pnl"])),
        Text(f"fees {amount(pf['fees'])}"),
        Text(f"open {len(pf['open_positions'])}  closed {pf['closed_positions']:,}"),
    ]


def positions_table(pf: dict[str, Any], width: int, rows: int) -> Table:
    from rawe_cli.ui.columns import Column

    ps = pf["open_positions"]
    cols = [
        Column.of("asset", "asset", [p["asset"] for p in ps]),
        Column.of("dir", "dir", [p["direction"] for p in ps]),
        Column.of("qty", "qty", [f"{p['qty']:.4f}" for p in ps], justify="right", priority=3),
        Column.of("entry", "entry", [f"{p['entry_price']:,.2f}" for p in ps], justify="right",
                  priority=2),
        Column.of("mark", "mark", [f"{p['mark']:,.2f}" for p in ps], justify="right",
                  priority=1),
        Column.of("upnl", "unrealized", [money(p["unrealized_pnl"]) for p in ps],
                  justify="right"),
    ]
    more = len(ps) - rows
    return build(plan(cols, width), rows, caption=f"+{more} more positions" if more > 0
                 else None)


@dataclass(slots=True)
class Dashboard:
    """The whole screen, planned for the size Rich gives it."""

    snap: dict[str, Any]
    history: History = field(default_factory=History)
    tz: tzinfo = UTC

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or console.height
        yield from self.layout(width, height).__rich_console__(
            console, options.update(width=width, height=height))

    # -- sections ----------------------------------------------------------------------------

    def _agents(self, width: int, rows: int) -> Table:
        agents = sorted(self.snap["agents"], key=lambda a: agent_key(a["name"]))
        total = len(agents)
        shown = agents if total <= rows else agents[:max(0, rows)]
        trend_w = max(6, min(24, width // 6))
        trends = {a["name"]: sparkline(self.history.weights.get(a["name"], []),
                                       trend_w).ljust(trend_w) for a in shown}
        marks = {a["name"]: self.history.mark(a["name"]) for a in shown}
        p = plan(agent_columns(shown, self.tz, marks, trends), width, self.history.widths)
        caption = None
        if total > len(shown):
            caption = f"+{total - len(shown):,} more agents"
            heavy = max(agents, key=lambda a: a["weight"])
            extra = f" (heaviest: {short_name(heavy['name'])} {heavy['weight']:.3f})"
            if len(caption) + len(extra) <= width:
                caption += extra
        title = f"Agents ({total:,})"
        return build(p, title=title, caption=caption)

    def _decisions(self, width: int, rows: int) -> Table | Text:
        ds = list(reversed(self.snap["decisions"]))[:max(0, rows)]
        total = self.snap["stats"]["decisions"]
        if not ds:
            return Text.assemble(("Collective decisions", "bold"), "\nnone yet", style="")
        p = plan(decision_columns(ds, self.tz), width, self.history.widths)
        return build(p, title=f"Collective decisions (newest {len(ds)} of {total:,})")

    def _portfolio(self, width: int, height: int) -> Group:
        pf = self.snap["portfolio"]
        parts: list[Any] = list(pack(portfolio_items(pf), width))
        left = height - len(parts)
        n_pos = len(pf["open_positions"])
        pos_want = min(n_pos, 4) + 2 if n_pos else 0
        eq = self.history.equity
        if left >= 1 and eq:
            label = f" {amount(min(eq))} .. {amount(max(eq))}"
            chart_h = 1 if left < 6 + pos_want else min(16, left - 1 - pos_want)
            if chart_h == 1:
                line = sparkline(eq, max(8, width - len(label)))
                parts.append(Text.assemble((line, "cyan"), (label, "dim")))
                left -= 1
            else:
                parts.append(Text(f"equity{label}", style="dim"))
                parts.extend(Text(ln, style="cyan") for ln in chart(eq, width, chart_h))
                left -= chart_h + 1
        if left >= 3 and n_pos:
            rows = n_pos if n_pos + 2 <= left else left - 3
            parts.append(positions_table(pf, width, rows))
        return Group(*parts)

    # -- the screen --------------------------------------------------------------------------

    def layout(self, width: int, height: int) -> Layout:
        head = pack(header_items(self.snap, self.tz), width)
        if self.history.notes:
            head.append(fit_words(self.history.notes[-1], width, style="dim"))
        n_agents = len(self.snap["agents"])
        n_dec = len(self.snap["decisions"])
        dec_want = (n_dec + 3) if n_dec else 2
        rest = height - len(head)
        wide = width >= WIDE
        side = min(64, width // 3) if wide else width
        main_w = width - side - 2 if wide else width
        pf_h = 0 if wide else len(pack(portfolio_items(self.snap["portfolio"]), width)) + 1
        rest -= pf_h
        dec_min = min(dec_want, max(5, rest // 3))
        room = rest - dec_min  # for the agents (and, wide, the portfolio beside them)
        if n_agents + 3 <= room:
            rows, top = n_agents, n_agents + 3
        else:
            rows = max(1, room - 4)
            top = rows + 4
        if wide:
            top = max(top, min(room, 12))
        spare = rest - top - dec_want
        if spare > 0 and wide:  # room to spare: a taller equity chart beside the agents
            top += spare
        elif spare >= 6:  # enough for an equity chart (and positions) over the agents
            grow = min(spare, 12)
            pf_h += grow
            rest -= grow
        root = Layout()
        header = Layout(Group(*head), name="header", size=len(head))
        decisions = Layout(self._decisions(width, rest - top - 3), name="decisions")
        if wide:
            body = Layout(name="top", size=top)
            body.split_row(Layout(self._agents(main_w, rows), name="agents"),
                           Layout(Text(" "), name="gap", size=2),
                           Layout(self._portfolio(side, top), name="portfolio", size=side))
            root.split_column(header, body, decisions)
        else:
            root.split_column(
                header,
                Layout(self._portfolio(width, pf_h), name="portfolio", size=pf_h),
                Layout(self._agents(width, rows), name="agents", size=top),
                decisions)
        return root


def summary(snap: dict[str, Any], width: int = 100, tz: tzinfo = UTC,
            max_agents: int = 10, more_hint: str = "") -> Group:
    """What is printed once at the end: totals, then at most `max_agents` agents."""
    s = snap["stats"]
    pf = snap["portfolio"]
    closed = [d for d in snap["decisions"] if d.get("pnl") is not None]
    wins = sum(1 for d in closed if d["pnl"] > 0)
    bar = f" of {format_seconds(s['bar_seconds'])}" if s.get("bar_seconds") else ""
    signals = f"{s['signals']:,} signals, " if s.get("signals") is not None else ""
    head = pack([Text("Summary", style="bold"), Text(f"{s['ticks']:,} bars{bar},"),
                 Text(f"{signals}{s['proposals']:,} proposals,"),
                 Text(f"{s['decisions']:,} decisions,"),
                 Text(f"{len(closed):,} closed ({wins:,} won)")], width, sep=" ")
    money_line = pack(portfolio_items(pf), width)
    agents = snap["agents"]
    if len(agents) > max_agents:
        shown = sorted(agents, key=lambda a: (-a["weight"], agent_key(a["name"])))[:max_agents]
        title = f"Agents (final: the {max_agents} heaviest of {len(agents):,})"
        caption = f"+{len(agents) - max_agents:,} more agents{more_hint}"
    else:
        shown = sorted(agents, key=lambda a: agent_key(a["name"]))
        title, caption = "Agents (final)", None
    table = build(plan(agent_columns(shown, tz), width), title=title, caption=caption)
    return Group(table, *head, *money_line)
