"""Durations in bars or time units, noise-unit levels, and the calendar of a bar series."""

from __future__ import annotations

import math
import subprocess

import pytest

from rawe_cli.core.metrics import CALENDAR, SESSIONS, calendar_periods
from rawe_cli.durations import BARS, Duration, format_seconds, parse_duration
from rawe_cli.levels import FRACTION, VOL, Level, parse_level
from tests.conftest import rawe_cmd


@pytest.mark.parametrize(("text", "value", "unit"), [
    ("12b", 12.0, BARS), ("12 bars", 12.0, BARS), ("1 bar", 1.0, BARS), ("2.5B", 2.5, BARS),
    ("90s", 90.0, "s"), ("30m", 1800.0, "s"), ("4h", 14400.0, "s"), ("2d", 172800.0, "s"),
    ("1w", 604800.0, "s"), (" 15 min ", 900.0, "s"), (300, 300.0, "s"), (7.5, 7.5, "s"),
    ("300", 300.0, "s"),
])
def test_durations_parse(text, value, unit) -> None:
    d = parse_duration(text)
    assert (d.value, d.unit) == (value, unit)


@pytest.mark.parametrize("bad", ["", "soon", "5x", "-3b", "nan", "inf s", True, None, [1]])
def test_bad_durations_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_bars_resolve_against_the_bar_size_and_time_does_not() -> None:
    assert Duration(40, BARS).seconds(300.0) == 12_000.0
    assert Duration(40, BARS).seconds(86_400.0) == 40 * 86_400.0
    assert Duration(3600.0).seconds(60.0) == 3600.0 and Duration(3600.0).bars(60.0) == 60.0
    with pytest.raises(ValueError, match="not bars"):
        parse_duration("3b", allow_bars=False)
    assert [format_seconds(x) for x in (5, 60, 300, 3600, 86400, 7.5)] == [
        "5s", "1m", "5m", "1h", "1d", "7.5s"]
    assert str(Duration(12, BARS)) == "12b"


def test_levels_are_fractions_or_noise_multiples() -> None:
    assert parse_level(0.02) == Level(0.02, FRACTION) and parse_level("2%") == Level(0.02)
    three = parse_level("3vol")
    assert three == Level(3.0, VOL)
    # 3 x per-bar vol x sqrt(horizon bars): the same stop in noise units at any bar size
    assert three.fraction(0.001, 40) == pytest.approx(3 * 0.001 * math.sqrt(40))
    assert three.fraction(0.02, 40) == pytest.approx(3 * 0.02 * math.sqrt(40))
    assert Level(0.02).fraction(0.5, 1000) == 0.02
    for bad in ("3xx", "0", "-1vol", "150%", 2.0, "abc"):
        with pytest.raises(ValueError):
            parse_level(bad)


def _series(start: float, step: float, n: int, keep=lambda ts: True) -> list[float]:
    return [t for t in (start + i * step for i in range(n)) if keep(t)]


def _weekday(ts: float) -> int:
    return (int(ts // 86400) + 3) % 7  # Monday = 0


MONDAY = 1_767_571_200.0  # 2026-01-05T00:00:00Z


def test_periods_per_year_follow_the_datas_calendar() -> None:
    around = _series(MONDAY, 300.0, 30 * 288)  # 5-minute bars, 30 days, 24/7
    assert calendar_periods(around, 300.0) == (pytest.approx(365.25 * 288), CALENDAR)
    days = _series(MONDAY, 86_400.0, 60, keep=lambda t: _weekday(t) < 5)
    assert calendar_periods(days, 86_400.0) == (252.0, SESSIONS)
    crypto_days = _series(MONDAY, 86_400.0, 60)
    assert calendar_periods(crypto_days, 86_400.0) == (pytest.approx(365.25), CALENDAR)

    def session(t: float) -> bool:  # 14:30-21:00 UTC on weekdays: 78 five-minute bars
        sec = t % 86_400
        return _weekday(t) < 5 and 52_200 <= sec < 75_600

    stocks = _series(MONDAY, 300.0, 30 * 288, keep=session)
    assert calendar_periods(stocks, 300.0) == (252.0 * 78, SESSIONS)
    short = _series(MONDAY, 5.0, 2000)  # less than a day of 5-second bars
    assert calendar_periods(short, 5.0)[0] == pytest.approx(365.25 * 86_400 / 5)


def test_a_bad_duration_on_the_command_line_is_one_line(tmp_path) -> None:
    for args, needle in ((["run", "--window", "5x", "--ticks", "5", "--fast", "--json"],
                          "unknown unit 'x'"),
                         (["backtest", "--bar-size", "3b", "--ticks", "5", "--json"],
                          "not bars")):
        r = subprocess.run(rawe_cmd(*args), capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stdout == ""  # a bad flag: a usage error
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rawe: error:") and needle in lines[0]
