"""`rawe tune`: the split holds, same seed same files, the files load, JSON shape, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rawe_cli.app import tune as tn
from rawe_cli.app.runtime import world_params
from rawe_cli.cli.app import app
from rawe_cli.config import Settings, load_personalities, load_settings, pick_agents
from rawe_cli.errors import RaweError, UsageError
from rawe_cli.feeds.base import Tick
from rawe_cli.feeds.scenarios import scenario_ticks
from rawe_cli.levels import VOL

SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
TICKS = 1500
WORLD = ["--scenario", "momentum", "--ticks", str(TICKS), "--seed", "3"]
runner = CliRunner()


def world(seed: int = 3) -> tuple[list[Tick], tn.Base]:
    settings = Settings(symbols=SYMBOLS, seed=seed)
    ticks = list(scenario_ticks("momentum", world_params(settings), TICKS))
    agents = pick_agents(load_personalities(None), 5, seed)
    return ticks, tn.Base(settings, tuple(agents), settings.bar_seconds)


def options(**changes: Any) -> tn.TuneOptions:
    base = {"train_fraction": 0.6, "trials": 4, "seed": 3, "workers": 1, "min_trades": 5}
    return tn.TuneOptions(**{**base, **changes})


def test_split_is_by_time_and_checked() -> None:
    ticks, _ = world()
    split = tn.split_ticks(ticks, 0.6)
    assert len(split.train) == 900 and len(split.test) == 600
    assert split.train + split.test == ticks
    assert max(t.timestamp for t in split.train) < min(t.timestamp for t in split.test)
    with pytest.raises(RaweError, match="too few ticks"):
        tn.split_ticks(ticks[:80], 0.6)
    for bad in (0.0, 1.0, -0.2, 1.5, float("nan")):
        with pytest.raises(RaweError, match="--train-fraction"):
            tn.split_ticks(ticks, bad)


def test_objective_penalises_abstaining() -> None:
    assert tn.objective({"trades": 30, "total_return": 0.01}, 20) == 0.01
    assert tn.objective({"trades": 30, "total_return": -0.5}, 20) == -0.5
    none = tn.objective({"trades": 0, "total_return": 0.0}, 20)
    few = tn.objective({"trades": 10, "total_return": 0.2}, 20)
    assert none < few < -1.0  # below any real return, and fewer trades is worse


def test_the_search_never_reads_a_held_out_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tick any backtest pulls is recorded with the run's label: no trial may see the
    first test timestamp or later (a leaking split would); the final test run does."""
    seen: dict[str, float] = {}
    real = tn.run_backtest

    def recording(ticks: Iterable[Tick], *args: Any, label: str = "", **kw: Any) -> Any:
        def watched() -> Iterator[Tick]:
            for tick in ticks:
                seen[label] = max(seen.get(label, float("-inf")), tick.timestamp)
                yield tick
        return real(watched(), *args, label=label, **kw)

    pools: list[dict[str, float]] = []
    real_init = tn.Runner.__init__

    def recording_init(self: tn.Runner, parts: dict[str, Any], *args: Any) -> None:
        pools.append({name: max(t.timestamp for t in part) for name, part in parts.items()})
        real_init(self, parts, *args)

    monkeypatch.setattr(tn, "run_backtest", recording)
    monkeypatch.setattr(tn.Runner, "__init__", recording_init)
    ticks, base = world()
    result = tn.tune(ticks, base, options(trials=5))
    first_test = result.split.test[0].timestamp
    trials = {k: v for k, v in seen.items() if k.startswith("trial ")}
    assert sorted(trials) == [f"trial {i}" for i in range(5)]
    assert max(trials.values()) < first_test
    assert max(trials.values()) == result.split.train[-1].timestamp  # the whole train part
    assert seen["test"] == seen["baseline test"] == ticks[-1].timestamp  # the probe works
    assert seen["baseline train"] < first_test
    # trial 0 is the untuned start (the shipped files lie inside the search space)
    assert result.search.values[0] == tn.objective(result.baseline_train, 5)
    # the search's runner (its worker pool, with more workers) holds the train part only
    assert list(pools[0]) == ["train"] and pools[0]["train"] < first_test


def test_first_trial_is_the_untuned_start_and_params_stay_in_range() -> None:
    ticks, base = world()
    split = tn.split_ticks(ticks, 0.6)
    found = tn.search(split.train, base, options(trials=3))
    assert len(found.values) == 3
    start = tn.start_params(base.settings, base.agents, base.bar_seconds)
    assert start["The Momentum Chaser/holding_horizon"] == 24
    assert start["threshold_share"] == 0.5
    settings, agents = tn.apply_params(found.best_params, base.settings, base.agents)
    assert 0.2 <= settings.threshold_share <= 0.8 and settings.window.in_bars
    for a in agents:
        assert 4 <= a.holding_horizon.value <= 800 and a.holding_horizon.in_bars
        assert a.stop_loss.unit == VOL and 1 <= a.stop_loss.value <= 8
        assert a.stance in ("follow", "fade")


def _tune_files(tmp: Path, *extra: str, fresh_process: bool = False
                ) -> tuple[bytes, bytes, dict[str, Any]]:
    out = tmp / "tuned.yaml"
    args = ["tune", *WORLD, "--trials", "4", "--workers", "2", "--min-trades", "5", "--out",
            str(out), "--json", *extra]
    if fresh_process:  # another interpreter, another hash seed
        proc = subprocess.run([sys.executable, "-m", "rawe_cli", *args], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PYTHONHASHSEED": "99"})
        assert proc.returncode == 0, proc.stderr
        stdout = proc.stdout
    else:
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        stdout = res.stdout
    doc = json.loads(stdout)
    return out.read_bytes(), Path(doc["settings"]).read_bytes(), doc


def test_same_seed_same_files_byte_for_byte(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / name).mkdir()
    a = _tune_files(tmp_path / "a")
    b = _tune_files(tmp_path / "b", fresh_process=True)
    assert a[0] == b[0] and a[1] == b[1]
    assert a[2]["best_trial"] == b[2]["best_trial"]
    assert a[2]["test"] == b[2]["test"]
    c = _tune_files(tmp_path / "c", "--seed", "4")
    assert c[0] != a[0]


def test_output_files_load_and_json_shape(tmp_path: Path) -> None:
    _, _, doc = _tune_files(tmp_path)
    assert set(doc) >= {"train", "test", "baseline_test", "personalities", "settings",
                        "trials", "best_trial", "split"}
    keys = {"total_return", "sharpe", "sortino", "max_drawdown", "win_rate", "trades",
            "exposure"}
    for part in ("train", "test", "baseline_test", "baseline_train"):
        assert keys <= set(doc[part]["metrics"])
    split = doc["split"]
    assert (split["train_ticks"], split["test_ticks"]) == (900, 600)
    assert split["train_end"].endswith("Z") and split["bar_seconds"] == 5.0
    assert doc["trials"] == 4 and doc["test"]["metrics"]["ticks"] == 600
    assert doc["train"]["metrics"]["ticks"] == 900
    assert set(doc["best_trial"]) == {"number", "value", "params"}

    agents = load_personalities(doc["personalities"])
    settings = load_settings(doc["settings"])
    assert [a.name for a in agents] == [a.name for a in load_personalities(None)]
    params = doc["best_trial"]["params"]
    shipped = {p.name: p for p in load_personalities(None)}
    for a in agents:  # the default space: shared multipliers of the shipped values
        assert a.holding_horizon.in_bars
        assert a.holding_horizon.value == max(1, round(
            shipped[a.name].holding_horizon.value * params["horizon_scale"]))
        assert a.stop_loss.unit == VOL
        assert a.stop_loss.value == pytest.approx(
            shipped[a.name].stop_loss.value * params["stop_scale"], abs=1e-4)
        assert a.stance == shipped[a.name].stance
    assert settings.threshold_share == params["threshold_share"]
    assert settings.narrative_half_life.value == params["narrative_half_life"]
    assert settings.seed == 3
    text = Path(doc["personalities"]).read_text()
    assert "holding_horizon: " in text and "vol\n" in text and text.count("- name:") == 5
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left

    # the tuned files reproduce the tuned test run through rawe backtest's loaders
    tuned_base = tn.Base(settings, tuple(agents), 5.0)
    ticks = list(scenario_ticks("momentum", world_params(settings), TICKS))
    again = tn.evaluate({"test": ticks[900:]}, tuned_base, tn.Job("test", "t", None))
    assert again == doc["test"]["metrics"]


def test_table_without_json(tmp_path: Path) -> None:
    res = runner.invoke(app, ["tune", *WORLD, "--trials", "2", "--workers", "1",
                              "--out", str(tmp_path / "t.yaml")])
    assert res.exit_code == 0, res.output
    for word in ("total return", "tuned, train", "tuned, test", "untuned, test", "trades"):
        assert word in res.stdout


OUT = ["--out", "{tmp}/t.yaml"]


@pytest.mark.parametrize(("args", "message", "code"), [
    ([*WORLD, *OUT, "--train-fraction", "1.0"], "--train-fraction must be between 0 and 1", 2),
    ([*WORLD, *OUT, "--train-fraction", "0"], "--train-fraction must be between 0 and 1", 2),
    ([*WORLD, *OUT, "--trials", "0"], "--trials must be at least 1", 2),
    (["--data", "{tmp}/missing", *OUT], "not a directory", 1),
    ([*OUT], "give --data DIR", 2),
    (["--scenario", "momentum", "--ticks", "60", *OUT], "too few ticks for a split", 1),
    ([*WORLD, "--out", "{tmp}/nope/t.yaml"], "directory {tmp}/nope does not exist", 2),
])
def test_bad_input_is_one_line_with_its_exit_code(tmp_path: Path, args: list[str], message: str,
                                                  code: int) -> None:
    """Bad flags exit 2 (usage); data that cannot do what was asked exits 1."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = subprocess.run([sys.executable, "-m", "rawe_cli", "tune", *args, "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == code
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rawe: error: ")
    assert message.replace("{tmp}", str(tmp_path)) in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_agents_space_tunes_every_agent_on_its_own(tmp_path: Path) -> None:
    _, _, doc = _tune_files(tmp_path, "--space", "agents")
    params = doc["best_trial"]["params"]
    agents = load_personalities(doc["personalities"])
    for a in agents:
        assert a.holding_horizon.value == params[f"{a.name}/holding_horizon"]
        assert a.stance == params[f"{a.name}/stance"]
    assert "horizon_scale" not in params
    res = runner.invoke(app, ["tune", *WORLD, "--space", "everything", "--out",
                              str(tmp_path / "x.yaml")])
    assert isinstance(res.exception, UsageError)  # the app turns it into exit 2, one line
    assert "--space must be one of" in str(res.exception)
