"""Pure builders of the backtest report (Rich renderables) from plain result dicts."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from rawe_cli.durations import format_seconds
from rawe_cli.ui.views import fmt_time, money


def pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:+.{digits}f}%"


def num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def metrics_table(result: dict[str, Any], title: str = "Performance") -> Table:
    m = result["metrics"]
    s = result.get("stats", {})
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    rows: list[tuple[str, str | Text]] = [
        ("total return", Text(pct(m["total_return"]),
                              style="green" if m["total_return"] > 0 else "red")),
        ("final equity", num(m.get("final_equity"))),
        ("annualised Sharpe", num(m["sharpe"])),
        ("annualised Sortino", num(m["sortino"])),
        ("max drawdown", pct(m["max_drawdown"]).lstrip("+")),
        ("win rate", "-" if m["win_rate"] is None else f"{m['win_rate']:.1%}"),
        ("trades (closed)", str(m["trades"])),
        ("exposure (time in market)", f"{m['exposure']:.1%}"),
    ]
    if s:
        rows += [
            ("ticks / bars / events", f"{s['ticks']:,} / {s['bars']:,} / {s['events']:,}"),
            ("signals / proposals / decisions",
             f"{s['signals']:,} / {s['proposals']:,} / {s['decisions']:,}"),
            ("period", f"{fmt_time(s.get('start'))} .. {fmt_time(s.get('end'))}"),
            ("bar size", format_seconds(m["bar_seconds"]) if m.get("bar_seconds") else "-"),
            ("periods a year", f"{m['periods_per_year']:,.0f} ({m.get('calendar', '-')})"
             if m.get("periods_per_year") else "-"),
        ]
        if s.get("open_at_end"):
            rows.append(("open at end (marked)", str(s["open_at_end"])))
    for k, v in rows:
        t.add_row(k, v)
    return t


def agents_table(agents: list[dict[str, Any]], title: str = "Agents") -> Table:
    regimes = sorted({r for a in agents for r in a.get("regime_scores", {})})
    t = Table(title=title, title_justify="left")
    t.add_column("agent")
    t.add_column("proposals", justify="right")
    t.add_column("votes", justify="right")
    t.add_column("wins", justify="right")
    t.add_column("losses", justify="right")
    t.add_column("P&L of its votes", justify="right")
    t.add_column("final weight", justify="right")
    for r in regimes:
        t.add_column(f"w[{r}]", justify="right")
    for a in sorted(agents, key=lambda a: (-a["weight"], a["name"])):
        scores = a.get("regime_scores", {})
        t.add_row(a["name"], f"{a.get('proposals', 0):,}", str(a["votes"]), str(a["wins"]),
                  str(a["losses"]), money(a["pnl"]), f"{a['weight']:.3f}",
                  *(f"{scores[r]:.3f}" if r in scores else "-" for r in regimes))
    return t


def compare_table(runs: list[dict[str, Any]], title: str = "Compare (best total return first)"
                  ) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("#", justify="right", style="dim")
    t.add_column("run")
    for col in ("total return", "Sharpe", "Sortino", "max DD", "win rate", "trades",
                "exposure"):
        t.add_column(col, justify="right")
    for i, r in enumerate(runs, start=1):
        m = r["metrics"]
        ret = m["total_return"]
        t.add_row(str(i), r["label"], Text(pct(ret), style="green" if ret > 0 else "red"),
                  num(m["sharpe"]), num(m["sortino"]), pct(m["max_drawdown"]).lstrip("+"),
                  "-" if m["win_rate"] is None else f"{m['win_rate']:.1%}", str(m["trades"]),
                  f"{m['exposure']:.1%}")
    return t


def report(result: dict[str, Any], source: str) -> Group:
    head = Text.assemble(("Backtest  ", "bold"), source, f"  scheme {result['scheme']}")
    return Group(head, metrics_table(result), agents_table(result["agents"]))


def compare_report(runs: list[dict[str, Any]], source: str) -> Group:
    head = Text.assemble(("Backtest compare  ", "bold"), source,
                         "  (agents alone: majority weights, threshold 1)")
    return Group(head, compare_table(runs))
