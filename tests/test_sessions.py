"""NYSE sessions (exchange-calendars): holidays, weekends, early closes; replayed equity data
follows them (no orders, no exits while closed); crypto trades 24/7; 252 sessions a year."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rawe_cli.brokers.paper import PaperBroker
from rawe_cli.brokers.sessions import SessionBroker
from rawe_cli.collective import CLOSED, OPEN, Collective
from rawe_cli.config import Settings
from rawe_cli.core import metrics
from rawe_cli.core import sessions as sess
from rawe_cli.core.weighting import AgentRecord, WinRateScheme
from rawe_cli.feeds import replay
from rawe_cli.models import Bar, Direction, Proposal

EXAMPLES = Path(__file__).parent.parent / "examples" / "data"


def t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def nyse() -> sess.Sessions:
    return sess.nyse(t("2025-01-01T00:00"), t("2025-12-31T00:00"))


def test_a_regular_session_opens_at_930_and_closes_at_1600_new_york(nyse: sess.Sessions) -> None:
    assert not nyse.is_open(t("2025-01-02T14:29"))
    assert nyse.is_open(t("2025-01-02T14:30"))  # 9:30 EST
    assert nyse.is_open(t("2025-01-02T20:59"))
    assert not nyse.is_open(t("2025-01-02T21:00"))  # 16:00 EST
    assert nyse.is_open(t("2025-07-07T13:30"))  # 9:30 EDT


def test_holidays_and_weekends_are_closed(nyse: sess.Sessions) -> None:
    assert not nyse.is_open(t("2025-07-04T15:00"))  # Independence Day
    assert not nyse.is_open(t("2025-12-25T15:00"))  # Christmas
    assert not nyse.is_open(t("2025-01-09T15:00"))  # national day of mourning (Carter)
    assert not nyse.is_open(t("2025-01-04T15:00"))  # a Saturday
    assert not nyse.is_open(t("2025-01-05T15:00"))  # a Sunday
    assert not nyse.is_session_day(t("2025-07-04T04:00"))  # a daily bar, midnight New York
    assert not nyse.is_session_day(t("2025-01-04T00:00"))
    assert nyse.is_session_day(t("2025-07-03T04:00"))
    assert nyse.is_session_day(t("2025-07-07T00:00"))  # midnight UTC stamps work too


def test_early_closes_end_the_session_at_1300(nyse: sess.Sessions) -> None:
    assert nyse.is_open(t("2025-11-28T17:55"))  # the day after Thanksgiving: 13:00 EST
    assert not nyse.is_open(t("2025-11-28T18:00"))
    assert nyse.is_open(t("2025-07-03T16:55"))  # the day before Independence Day, 13:00 EDT
    assert not nyse.is_open(t("2025-07-03T17:00"))
    assert nyse.is_open(t("2025-07-02T19:00"))  # a normal day is open then


def test_crypto_trades_around_the_clock(nyse: sess.Sessions) -> None:
    saturday = t("2025-01-04T03:00")
    assert nyse.tradable("BTC/USD", saturday, 300)
    assert not nyse.tradable("AAPL", saturday, 300)
    assert nyse.tradable("AAPL", t("2025-01-06T15:00"), 300)


def test_the_cheap_precheck_rules_out_off_hours_and_weekend_bars() -> None:
    assert sess.may_be_sessions([t("2025-01-02T15:00")], 300)
    assert not sess.may_be_sessions([t("2025-01-02T03:00")], 300)  # night
    assert not sess.may_be_sessions([t("2025-01-04T15:00")], 300)  # Saturday
    assert sess.may_be_sessions([t("2025-01-02T05:00")], 86_400)
    assert not sess.may_be_sessions([t("2025-01-04T05:00")], 86_400)


def _write(directory: Path, rows: list[tuple[str, str, float]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    lines += [f"{ts},{sym},{p},{p},{p},{p},100" for ts, sym, p in rows]
    (directory / "prices.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "narratives.jsonl").write_text("", encoding="utf-8")
    return directory


def test_replayed_equity_data_in_sessions_follows_the_nyse(tmp_path: Path) -> None:
    d = _write(tmp_path / "a", [("2025-01-02T14:30:00Z", "AAPL", 100.0),
                                ("2025-01-02T14:35:00Z", "AAPL", 101.0),
                                ("2025-01-04T10:00:00Z", "BTC/USD", 90000.0)])
    assert replay.load(d).calendar == "NYSE"
    off = _write(tmp_path / "b", [("2025-01-02T14:30:00Z", "AAPL", 100.0),
                                  ("2025-01-02T23:00:00Z", "AAPL", 101.0)])
    assert replay.load(off).calendar == "24/7"  # an evening bar: not exchange data
    holiday = _write(tmp_path / "c", [("2025-01-08T15:00:00Z", "AAPL", 100.0),
                                      ("2025-01-09T15:00:00Z", "AAPL", 101.0)])
    assert replay.load(holiday).calendar == "24/7"  # a bar on a closed day
    assert replay.load(EXAMPLES).calendar == "24/7"  # the synthetic sample: around the clock


def _collective(nyse: sess.Sessions) -> Collective:
    s = Settings(fee_bps=0, slippage_bps=0, threshold=2.0, window=10.0)
    recs = {n: AgentRecord(n, n) for n in ("a", "b")}
    broker = SessionBroker(PaperBroker(fee_bps=0, slippage_bps=0), nyse, 300.0)
    return Collective(s, recs, WinRateScheme(), broker)


def _vote(agent: str, ts: float, asset: str = "AAPL") -> Proposal:
    return Proposal(f"{agent}-{asset}-{ts}", agent, asset, Direction.LONG, 0.1, 0.01, 0.2,
                    "n", "narrative_leads", ts, horizon=600.0, stop_loss=0.5, take_profit=0.5)


def test_no_exit_while_the_exchange_is_closed(nyse: sess.Sessions) -> None:
    col = _collective(nyse)
    friday = t("2025-01-03T20:50")  # ten minutes before Friday's close
    col.on_bar(Bar(friday, "AAPL", 100, 100, 100, 100, 1))
    col.on_proposal(_vote("a", friday), friday)
    _, decision = col.on_proposal(_vote("b", friday), friday)
    assert decision is not None and col.ledger[decision.id].status == OPEN
    saturday = t("2025-01-04T12:00")  # horizon long past, but the NYSE is closed
    col.check_exits(saturday)
    assert col.ledger[decision.id].status == OPEN
    assert col.broker.can_trade("AAPL", saturday).startswith("market closed")
    monday = t("2025-01-06T14:30")
    col.on_bar(Bar(monday, "AAPL", 102, 102, 102, 102, 1))
    col.check_exits(monday)
    entry = col.ledger[decision.id]
    assert entry.status == CLOSED and entry.exit_reason == "horizon"
    assert entry.pnl == pytest.approx(200.0)  # 100 shares, 100 -> 102, no fees


def test_no_order_opens_on_a_closed_session_but_crypto_trades(nyse: sess.Sessions) -> None:
    col = _collective(nyse)
    saturday = t("2025-01-04T12:00")
    for sym in ("AAPL", "BTC/USD"):
        col.on_bar(Bar(saturday, sym, 100, 100, 100, 100, 1))
        col.on_proposal(_vote("a", saturday, sym), saturday)
        col.on_proposal(_vote("b", saturday, sym), saturday)
    assert set(col.portfolio.positions) == {"BTC/USD"}


def test_equities_on_the_calendar_use_252_sessions_a_year() -> None:
    times = [t("2025-01-02T14:30") + 86_400 * i for i in range(3)]
    assert metrics.calendar_periods(times, 86_400.0, sessions=True) == (252.0, metrics.SESSIONS)
    per_year, _ = metrics.calendar_periods(times, 300.0, sessions=True)
    assert per_year == 252 * 78  # 6.5 h of 5-minute bars a session
    # without the calendar, three weekdays with no weekend in between look like 24/7 data
    assert metrics.calendar_periods(times, 86_400.0)[1] == metrics.CALENDAR
