"""The live dashboard, rendered at 80x24, 120x35 and 200x50 from a real run's snapshots."""

from __future__ import annotations

import asyncio
import io
import re
import time
from typing import Any

import pytest
from rich.console import Console

from rawe_cli.app.runtime import RunOptions, run_embedded
from rawe_cli.config import Settings, load_personalities, pick_agents
from rawe_cli.ui.columns import Column, build, plan
from rawe_cli.ui.dashboard import Dashboard, History, chart, sparkline, summary
from rawe_cli.ui.views import money, name_forms

SIZES = [(80, 24), (120, 35), (200, 50)]
CUT_NUMBER = re.compile(r"[\d.,+-]…|…[\d.,]")


def _run(agents: int, ticks: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    s = Settings(seed=7)
    opts = RunOptions(settings=s, personalities=pick_agents(load_personalities(None), agents, 7),
                      ticks=ticks, fast=True)
    snaps: list[dict[str, Any]] = []
    final = asyncio.run(run_embedded(opts, on_refresh=snaps.append, refresh_every=0.0))
    return snaps, final


@pytest.fixture(scope="module")
def five() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return _run(5, 1500)


@pytest.fixture(scope="module")
def thousand() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return _run(1000, 60)


def with_positions(snap: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with three open positions (a fast run often ends flat)."""
    pf = dict(snap["portfolio"])
    pf["open_positions"] = [
        {"asset": a, "direction": d, "qty": q, "entry_price": e, "mark": m,
         "unrealized_pnl": u, "decision_id": f"d-{a}", "opened_at": 0.0}
        for a, d, q, e, m, u in (("AAPL", "long", 12.5, 187.25, 188.0, 9.38),
                                 ("BTC/USD", "short", 0.0312, 97215.4, 97001.0, 6.69),
                                 ("TSLA", "long", 40.0, 251.1, 249.9, -48.0))]
    pf["equity"] = 123_456_789.12  # wide enough to be cut, were numbers ever cut
    return {**snap, "portfolio": pf}


def render(snap: dict[str, Any], history: History, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, record=True, file=io.StringIO(),
                      color_system=None, legacy_windows=False)
    console.print(Dashboard(snap, history))
    return console.export_text().splitlines()


def history_of(snaps: list[dict[str, Any]]) -> History:
    h = History()
    for s in snaps:
        h.update(s)
    return h


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_dashboard_fits_and_shows_everything_that_matters(five, width, height) -> None:
    snaps, _ = five
    snap = with_positions({**snaps[-1], "ticks_total": 1500})
    lines = render(snap, history_of(snaps), width, height)
    text = "\n".join(lines)
    assert len(lines) == height and max(len(ln) for ln in lines) <= width
    # the header: every cell with its value, the bar size kept
    for needle in ("RAWE collective", "tick 1,500/1,500", "bar 5s", "event time 2026-01-01",
                   "UTC", "regime", "signals", "proposals", "decisions", "closed"):
        assert needle in text, (needle, text)
    # all five agents, by some form of their name
    for a in snap["agents"]:
        assert any(form in text for form in name_forms(a["name"])), (a["name"], text)
    assert "more agents" not in text
    # the equity figure whole, numbers never cut, no zero-width column
    assert "123,456,789.12" in text
    assert not CUT_NUMBER.search(text), text
    for header in ("agent", "weight", "P&L", "time UTC", "asset", "dir", "status"):
        assert header in text, (header, text)
    shown = [d for d in snap["decisions"] if d["asset"] in text]
    assert shown, text


def test_wider_screens_show_more(five) -> None:
    snaps, _ = five
    snap = with_positions(snaps[-1])
    h = history_of(snaps)
    small, mid, big = (render(snap, h, w, ht) for w, ht in SIZES)
    # the largest screen shows every decision row it has and the open positions
    assert sum("skipped" in ln or "closed" in ln for ln in big) >= \
        sum("skipped" in ln or "closed" in ln for ln in small)
    assert "unrealized" in "\n".join(big) and "BTC/USD" in "\n".join(big)
    assert "weight trend" in "\n".join(mid)
    # the free space is used: nine in ten lines of the big screen carry something
    assert sum(1 for ln in big if ln.strip()) >= 0.9 * len(big)


def test_column_widths_and_row_order_are_stable_from_frame_to_frame(five) -> None:
    snaps, _ = five
    h = History()
    heads, orders = [], []
    for snap in snaps[-40:]:
        h.update(snap)
        lines = render(snap, h.frozen(), 120, 35)
        heads.append(next(ln for ln in lines if ln.startswith("agent ")))
        start = lines.index(heads[-1]) + 2
        orders.append([ln[:26].strip() for ln in lines[start:start + 5]])
    assert len(set(heads[5:])) == 1, heads
    assert all(o == orders[0] for o in orders), orders
    # a fixed order (by name), whatever the weights do
    assert orders[0] == sorted(a["name"] for a in snaps[-1]["agents"])
    by_weight = [a["name"] for a in sorted(snaps[-1]["agents"], key=lambda a: -a["weight"])]
    assert orders[0] != by_weight


def test_a_moved_weight_is_marked_not_resorted() -> None:
    base = {"stats": {"ticks": 1, "event_time": 0.0, "signals": 0, "proposals": 0,
                      "decisions": 0, "closed_positions": 0},
            "regime": "", "decisions": [],
            "portfolio": {"cash": 1.0, "equity": 1.0, "realized_pnl": 0.0,
                          "unrealized_pnl": 0.0, "fees": 0.0, "open_positions": [],
                          "closed_positions": 0}}

    def agents(w: float) -> list[dict[str, Any]]:
        return [{"name": n, "personality": n, "weight": x, "wins": 0, "losses": 0,
                 "win_rate": None, "pnl": 0.0, "votes": 0, "updated": None}
                for n, x in (("Ann", 1.0), ("Bob", w))]

    h = History()
    h.update({**base, "agents": agents(1.0)})
    h.update({**base, "agents": agents(1.4)})
    lines = render({**base, "agents": agents(1.4)}, h, 80, 24)
    rows = [ln for ln in lines if ln.startswith(("Ann", "Bob"))]
    assert rows[0].startswith("Ann") and "1.400▲" in rows[1]


def test_a_thousand_agents_fit_and_draw_quickly(thousand) -> None:
    snaps, _ = thousand
    h = history_of(snaps)
    for width, height in SIZES:
        started = time.perf_counter()
        lines = render(snaps[-1], h, width, height)
        elapsed = time.perf_counter() - started
        text = "\n".join(lines)
        assert len(lines) == height
        m = re.search(r"\+([\d,]+) more agents", text)
        assert m is not None, text
        shown = sum(1 for ln in lines if re.match(r"^(The |)\S+.* \d\.\d{3}[▲▼ ]", ln))
        assert shown + int(m.group(1).replace(",", "")) == 1000
        assert not CUT_NUMBER.search(text)
        assert elapsed < 0.5, elapsed


def test_the_summary_is_bounded(thousand) -> None:
    _, final = thousand
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    console.print(summary(final, 80, more_hint="; `rawe run --json` lists every agent"))
    lines = console.export_text().splitlines()
    assert len(lines) <= 22
    text = "\n".join(lines)
    assert "+990 more agents" in text and "Summary" in text
    assert text.count("Summary") == 1


def test_the_summary_of_five_lists_all_five(five) -> None:
    _, final = five
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    console.print(summary(final, 80))
    text = console.export_text()
    assert all(any(f in text for f in name_forms(a["name"])) for a in final["agents"])
    assert f"{final['portfolio']['equity']:,.2f}" in text


def test_sparkline_and_chart() -> None:
    assert sparkline([1, 2, 3, 4], 10) == "▁▃▆█"
    assert sparkline([2, 2, 2], 5) == "───"
    assert len(sparkline(list(range(1000)), 20)) == 20
    assert sparkline([], 5) == "" and sparkline([1.0], 0) == ""
    lines = chart([0, 1, 2, 3], 10, 3)
    assert len(lines) == 3 and lines[-1][0] != " " and lines[0][-1] == "█"


def test_history_stays_bounded() -> None:
    h = History(points=16)
    for i in range(10_000):
        h.update({"agents": [{"name": "A", "weight": float(i)}],
                  "portfolio": {"equity": float(i)}})
    assert len(h.equity) <= 17 and len(h.weights["A"]) <= 17
    assert h.equity[-1] >= 9_000  # the newest samples are kept


def test_the_planner_drops_columns_rather_than_cut_numbers() -> None:
    cols = [Column.of("name", "name", ["The Risk-Averse Guardian"], cut=True, min_width=6),
            Column.of("pnl", "P&L", [money(-1234567.891)], justify="right"),
            Column.of("extra", "something long", ["x" * 30], priority=3),
            Column.of("more", "more", ["y" * 10], priority=1)]
    p = plan(cols, 30)
    assert [c.key for c in p.columns] == ["name", "pnl"] and p.width <= 30
    console = Console(width=30, record=True, file=io.StringIO(), color_system=None)
    console.print(build(p))
    text = console.export_text()
    assert "-1,234,567.89" in text and "more" not in text


def test_names_shorten_before_columns_go() -> None:
    cols = [Column("name", "agent", [[f] for f in name_forms("The Momentum Chaser #2")],
                   cut=True), Column.of("w", "weight", ["1.000"], priority=2)]
    p = plan(cols, 20)
    assert [c.key for c in p.columns] == ["name", "w"]
    assert p.columns[0].forms[p.columns[0].form] == ["Chaser #2"]
