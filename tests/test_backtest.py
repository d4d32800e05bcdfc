"""The backtest harness and `rawe backtest`: determinism, same core, report shapes, errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rawe_cli.app.backtest import run_backtest, run_compare
from rawe_cli.app.runtime import RunOptions, run_embedded, world_params
from rawe_cli.cli.app import app
from rawe_cli.config import SCHEMES, Settings, load_personalities, pick_agents
from rawe_cli.core.regime import RegimeClassifier
from rawe_cli.errors import RaweError
from rawe_cli.feeds import replay
from rawe_cli.feeds.scenarios import SCENARIOS, scenario_params, scenario_ticks
from rawe_cli.feeds.synthetic import SyntheticWorld, WorldParams

ROOT = Path(__file__).parent.parent
SYMS = ("AAA", "BBB", "CCC")


def agents(n: int = 5, seed: int = 7) -> list:
    return pick_agents(load_personalities(None), n, seed)


def test_same_seed_same_result() -> None:
    s = Settings(seed=3, scheme="regime")
    a = run_backtest(scenario_ticks("regime-switching", world_params(s), 1500), s, agents())
    b = run_backtest(scenario_ticks("regime-switching", world_params(s), 1500), s, agents())
    assert a.metrics == b.metrics and a.agents == b.agents and a.equity == b.equity
    assert a.weights == b.weights
    assert a.metrics["trades"] > 10  # it did trade
    c = run_backtest(scenario_ticks("regime-switching", world_params(Settings(seed=4)), 1500),
                     s, agents())
    assert c.equity != a.equity


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def test_replaying_a_recorded_world_gives_the_same_run(tmp_path: Path) -> None:
    """Same core: the world written to files and replayed trades exactly like the world
    itself, and the replay has no true regime, so the classifier cannot have read it."""
    params = WorldParams(symbols=SYMS, seed=5)
    ticks = list(SyntheticWorld(params).ticks(3000))
    rows = ["timestamp,symbol,open,high,low,close,volume"]
    events = []
    for t in ticks:
        rows += [f"{_iso(b.timestamp)},{b.symbol},{b.open!r},{b.high!r},{b.low!r},"
                 f"{b.close!r},{b.volume!r}" for b in t.bars]
        events += [json.dumps({"timestamp": _iso(e.timestamp), "narrative_id": e.narrative_id,
                               "assets": list(e.symbols), "intensity": e.intensity,
                               "sentiment": e.sentiment}) for e in t.events]
    body = rows[1:][::-1]  # newest first: row order must not matter
    (tmp_path / "prices.csv").write_text("\n".join([rows[0], *body]) + "\n")
    (tmp_path / "narratives.jsonl").write_text("\n".join(events) + "\n")
    data = replay.load(tmp_path)
    assert len(data.ticks) == len(ticks)
    assert all(t.regime == "" for t in data.ticks)
    for scheme in ("winrate", "regime"):
        s = Settings(symbols=SYMS, seed=5, scheme=scheme)
        live = run_backtest(ticks, s, agents())
        again = run_backtest(data.ticks, s, agents())
        assert live.metrics == again.metrics
        assert live.agents == again.agents
        assert live.metrics["trades"] > 5


def test_regime_classifier_tracks_the_true_regime() -> None:
    """The classifier sees bars only; scored against the world's true regime afterwards."""
    accuracies = []
    for seed in (1, 2, 4, 5):
        clf = RegimeClassifier()
        hits = total = 0
        for tick in SyntheticWorld(WorldParams(seed=seed)).ticks(6000):
            label = clf.update(tick.bars)
            if label is None:
                continue
            total += 1
            hits += (label == "volatile") == (tick.regime == "reversal")
        accuracies.append(hits / total)
    assert min(accuracies) > 0.75, accuracies
    assert sum(accuracies) / len(accuracies) > 0.8, accuracies


def test_classifier_warms_up_and_can_use_trend() -> None:
    from rawe_cli.core.regime import RegimeParams

    clf = RegimeClassifier(RegimeParams(use_trend=True, warmup=30))
    labels = [clf.update(t.bars) for t in SyntheticWorld(WorldParams(seed=1)).ticks(400)]
    assert labels[:25] == [None] * 25
    seen = {lab for lab in labels if lab}
    assert seen and all(lab.split("-")[0] in ("calm", "volatile") and
                        lab.split("-")[1] in ("trending", "ranging") for lab in seen)


def test_scenarios() -> None:
    base = WorldParams()
    assert scenario_params("regime-switching", base) == base
    assert scenario_params("momentum", base).regimes == ("momentum",)
    assert scenario_params("noise", base).real_share == 0.0
    assert {t.regime for t in scenario_ticks("reversal", base, 300)} == {"reversal"}
    assert set(SCENARIOS) == {"regime-switching", "momentum", "reversal", "noise", "slow",
                              "weak"}
    assert scenario_params("slow", base).life_scale == 10.0
    with pytest.raises(RaweError, match="unknown scenario 'nope'"):
        scenario_params("nope", base)


def test_compare_runs_every_scheme_and_every_agent_alone_best_first() -> None:
    s = Settings(seed=2)
    ticks = list(scenario_ticks("regime-switching", world_params(s), 800))
    runs = run_compare(ticks, s, agents(3))
    labels = [r.label for r in runs]
    assert sorted(labels) == sorted(
        ["scheme majority", "scheme winrate", "scheme hedge", "scheme regime", "scheme meta"]
        + [f"alone {p.name}" for p in agents(3)])
    rets = [r.metrics["total_return"] for r in runs]
    assert rets == sorted(rets, reverse=True)
    alone = next(r for r in runs if r.label.startswith("alone"))
    assert len(alone.agents) == 1


runner = CliRunner()


def test_cli_json_shape() -> None:
    res = runner.invoke(app, ["backtest", "--scenario", "momentum", "--seed", "3", "--ticks",
                              "600", "--scheme", "hedge", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    for key in ("total_return", "sharpe", "sortino", "max_drawdown", "win_rate", "trades",
                "exposure"):
        assert key in doc["metrics"]
    assert doc["scheme"] == "hedge" and doc["source"]["scenario"] == "momentum"
    assert len(doc["agents"]) == 5
    for a in doc["agents"]:
        assert {"name", "votes", "wins", "losses", "pnl", "weight"} <= set(a)
    assert isinstance(doc["metrics"]["trades"], int)


def test_cli_compare_json_on_sample_data() -> None:
    res = runner.invoke(app, ["backtest", "--data", str(ROOT / "examples" / "data"),
                              "--agents", "2", "--ticks", "400", "--compare", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["source"]["ticks"] == 400
    assert len(doc["runs"]) == len(SCHEMES) + 2
    rets = [r["metrics"]["total_return"] for r in doc["runs"]]
    assert rets == sorted(rets, reverse=True)


def test_cli_report_has_tables() -> None:
    res = runner.invoke(app, ["backtest", "--ticks", "500", "--scheme", "regime"])
    assert res.exit_code == 0, res.output
    for word in ("total return", "annualised Sharpe", "Sortino", "max drawdown", "win rate",
                 "trades", "exposure", "P&L of its votes", "final weight"):
        assert word in res.stdout


def test_plot_without_matplotlib_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    res = runner.invoke(app, ["backtest", "--ticks", "50", "--plot", str(tmp_path / "x.png")])
    assert isinstance(res.exception, RaweError)
    msg = str(res.exception)
    assert "\n" not in msg and "pip install 'rawe-cli[plot]'" in msg
    assert not (tmp_path / "x.png").exists()


def test_plot_with_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "bt.png"
    res = runner.invoke(app, ["backtest", "--ticks", "300", "--scheme", "hedge", "--plot",
                              str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bt.png"]  # no temp file left


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "X", "--scenario", "momentum"], "not both"),
    (["--scenario", "bogus"], "unknown scenario 'bogus'"),
    (["--ticks", "0"], "--ticks must be at least 1"),
    (["--scheme", "nope"], "scheme"),
])
def test_cli_option_errors(args: list[str], message: str) -> None:
    res = runner.invoke(app, ["backtest", *args])
    assert isinstance(res.exception, RaweError)
    assert message in str(res.exception)


def test_bad_data_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "prices.csv").write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2026-01-02T00:00:00Z,A,1,1,1,1,1\n2026-01-02T00:00:05Z,A,1,1,1,NaN,1\n")
    (tmp_path / "narratives.jsonl").write_text("")
    proc = subprocess.run([sys.executable, "-m", "rawe_cli", "backtest", "--data",
                           str(tmp_path), "--json"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""  # nothing half-written
    assert proc.stderr.strip().splitlines() == [
        f"rawe: error: {tmp_path / 'prices.csv'} line 3: close is NaN"]


def test_rawe_run_with_the_regime_scheme_classifies() -> None:
    s = Settings(scheme="regime", seed=7)
    opts = RunOptions(settings=s, personalities=agents(), ticks=400, fast=True)
    snap = asyncio.run(run_embedded(opts))
    scores = [set(a["regime_scores"]) for a in snap["agents"]]
    assert any(sc for sc in scores)
    assert set().union(*scores) <= {"calm", "volatile"}
