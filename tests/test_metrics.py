"""Metrics on equity curves small enough to compute by hand."""

from __future__ import annotations

import math

import pytest

from rawe_cli.core import metrics as mx


def test_total_return_and_returns() -> None:
    eq = [100.0, 110.0, 99.0, 108.9]
    assert mx.total_return(eq) == pytest.approx(0.089)
    assert mx.returns(eq) == pytest.approx([0.10, -0.10, 0.10])


def test_max_drawdown_is_largest_fall_from_a_peak() -> None:
    # peak 120 -> trough 90 is 25%; the later fall 130 -> 110 is only 15.4%
    assert mx.max_drawdown([100, 120, 90, 130, 110]) == pytest.approx(0.25)
    assert mx.max_drawdown([100, 101, 102]) == 0.0


def test_sharpe_and_sortino_by_hand() -> None:
    rets = [0.01, -0.02, 0.03, 0.0]
    mean = 0.005
    sd = math.sqrt(((0.005) ** 2 + (0.025) ** 2 + (0.025) ** 2 + (0.005) ** 2) / 3)
    per_year = 4.0
    assert mx.sharpe(rets, per_year) == pytest.approx(mean / sd * 2.0)
    downside = math.sqrt((0.02**2) / 4)
    assert mx.sortino(rets, per_year) == pytest.approx(mean / downside * 2.0)


def test_undefined_ratios_are_none() -> None:
    assert mx.sharpe([0.01, 0.01, 0.01], 252) is None  # no variation
    assert mx.sortino([0.01, 0.02], 252) is None  # no losing period
    assert mx.sharpe([0.01], 252) is None


def test_annualisation_from_the_data_step() -> None:
    assert mx.time_step([0, 5, 10, 20, 25]) == 5  # median spacing, a gap does not move it
    assert mx.periods_per_year(5.0) == pytest.approx(365.25 * 86400 / 5)
    assert mx.periods_per_year(86400.0) == pytest.approx(365.25)
    assert mx.periods_per_year(None) == 0.0


def test_win_rate_and_summary() -> None:
    assert mx.win_rate([5.0, -1.0, 0.0, 2.0]) == 0.5
    assert mx.win_rate([]) is None
    eq = [100.0, 101.0, 100.0, 102.0]
    s = mx.summarize(eq, [0.0, 86400.0, 172800.0], [1.0, -1.0, 2.0], exposed_ticks=2)
    assert s["total_return"] == pytest.approx(0.02)
    assert s["trades"] == 3 and s["win_rate"] == pytest.approx(2 / 3)
    assert s["exposure"] == pytest.approx(2 / 3)
    assert s["periods_per_year"] == pytest.approx(365.25)
    rets = mx.returns(eq)
    assert s["sharpe"] == pytest.approx(mx.sharpe(rets, 365.25))
    assert s["max_drawdown"] == pytest.approx(1 - 100 / 101)
