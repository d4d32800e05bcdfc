import subprocess
from pathlib import Path

import pytest

from rawe_cli.config import Settings, load_personalities, load_settings, pick_agents
from rawe_cli.durations import Duration
from rawe_cli.errors import ConfigError
from tests.conftest import ROOT, rawe_cmd

GOOD = """
personalities:
  - name: Alpha
    trusts: [narrative_leads]
    min_confidence: 0.8
  - name: Beta
    stance: fade
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_personalities_are_five_distinct_and_valid():
    items = load_personalities(None)
    names = [p.name for p in items]
    assert len(items) >= 5
    assert "The Balanced Arbitrator" in names
    assert len({(p.trusts, p.stance, p.min_confidence, p.position_size) for p in items}) == len(
        items)
    balanced = next(p for p in items if p.name == "The Balanced Arbitrator")
    assert balanced.min_confidence == 0.7


def test_user_file_with_defaults(tmp_path):
    items = load_personalities(write(tmp_path, GOOD))
    assert [p.name for p in items] == ["Alpha", "Beta"]
    assert items[0].trusts == ("narrative_leads",)
    assert items[1].stance == "fade" and items[1].min_confidence == 0.7


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("personalities:\n  - name: A\n    min_confidence: 1.5\n",
         "personality 1 ('A'): field 'min_confidence': must be a number in [0, 1], got 1.5"),
        ("personalities:\n  - name: A\n    trusts: [rumours]\n",
         "field 'trusts': unknown item 'rumours'"),
        ("personalities:\n  - name: A\n    stop_los: 0.1\n", "unknown field 'stop_los'"),
        ("personalities:\n  - min_confidence: 0.5\n", "personality 1: field 'name': is required"),
        ("personalities:\n  - name: A\n  - name: A\n", "duplicate name 'A'"),
        ("personalities:\n  - name: A\n    position_size: 0\n", "field 'position_size'"),
        ("personalities:\n  - name: A\n    stance: sideways\n",
         "field 'stance': must be one of follow, fade"),
        ("personalities: []\n", "expected a non-empty list"),
        ("personalities:\n  - name: A\n   bad: [\n", "not valid YAML at line"),
    ],
)
def test_bad_personality_files_name_the_file_and_field(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_personalities(path)
    assert str(path) in str(err.value)
    assert needle in str(err.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_personalities(tmp_path / "nope.yaml")


def test_settings_file_and_flag_overrides(tmp_path):
    path = write(tmp_path, "threshold: 2.5\nsymbols: [AAA, BBB]\nwindow: 20\n", "s.yaml")
    s = load_settings(path)
    assert s.threshold == 2.5 and s.symbols == ("AAA", "BBB") and s.window == Duration(20.0)
    assert s.consensus_threshold() == (2.5, None)  # an absolute threshold given: no share
    s2 = s.with_overrides(threshold=4.0, window=None, scheme="majority")
    assert s2.threshold == 4.0 and s2.window == Duration(20.0) and s2.scheme == "majority"
    s3 = s.with_overrides(window="4b", tick_seconds="5m")
    assert s3.window == Duration(4.0, "bars") and s3.window.seconds(s3.bar_seconds) == 1200
    with pytest.raises(ConfigError, match="field 'scheme'"):
        s.with_overrides(scheme="oracle")


def test_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="field 'threshold'"):
        load_settings(write(tmp_path, "threshold: -1\n", "s.yaml"))
    with pytest.raises(ConfigError, match=r"unknown field 'treshold' \(did you mean "
                       r"'threshold'\?\); known fields: archive, "):
        load_settings(write(tmp_path, "treshold: 1\n", "s.yaml"))
    with pytest.raises(ConfigError, match="min_weight"):
        load_settings(write(tmp_path, "min_weight: 5\nmax_weight: 2\n", "s.yaml"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("threshold: -1\nwindow: 5x\ntreshold: 2\n", "unknown field 'treshold'"),  # typos first
        ("fee_bps: '1.5'\n", "field 'fee_bps': must be a number in [0, 1000], got '1.5'"),
        ("seed: 2.5\n", "field 'seed': must be a whole number, got 2.5"),
        ("seed: 2.0\n", "field 'seed': must be a whole number, got 2.0 (write 2)"),
        ("fee_bps: .nan\n", "field 'fee_bps': must be finite, got nan"),
        ("symbols: [A, A]\n", "field 'symbols': has duplicate items"),
        ("tick_seconds: 3b\n", "field 'tick_seconds': '3b': must be a length of time here"),
        ("window: 0b\n", "field 'window': must be a duration > 0"),
        ("archive: null\n", "field 'archive': is required"),
        ("- 1\n", "must be a mapping of field: value, got list"),
    ],
)
def test_bad_settings_files_are_one_line_in_our_words(tmp_path, text, needle):
    """pydantic's report (several lines, 'Input should be ...', a URL) never reaches the user."""
    path = write(tmp_path, text, "s.yaml")
    proc = subprocess.run(rawe_cmd("run", "--fast", "--ticks", "3", "-c", str(path)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"rawe: error: {path}: ")
    assert needle in proc.stderr
    assert "Input should" not in proc.stderr and "pydantic" not in proc.stderr


def test_python_callers_are_validated_too():
    """Settings and Personality check their fields however they are built (a file, a flag,
    `dataclasses.replace`), and parse durations and levels given as numbers or strings."""
    import dataclasses

    from rawe_cli.config import Personality
    from rawe_cli.levels import Level

    p = Personality(name="X", holding_horizon="2h", cooldown=15, stop_loss="2%",
                    take_profit=0.05)
    assert p.holding_horizon == Duration(7200.0) and p.cooldown == Duration(15.0)
    assert p.stop_loss == Level(0.02) and p.take_profit == Level(0.05)
    assert Settings(tick_seconds="5m", window=20).tick_seconds == 300.0
    with pytest.raises(ValueError, match="min_weight"):
        Settings(min_weight=5.0)
    with pytest.raises(ValueError, match="position_size"):
        dataclasses.replace(p, position_size=0)


def test_more_agents_than_personalities_makes_numbered_variants():
    base = load_personalities(None)
    agents = pick_agents(base, len(base) + 3, seed=1)
    names = [a.name for a in agents]
    assert len(set(names)) == len(names)
    assert names[len(base)] == f"{base[0].name} #2"
    assert agents[len(base)].min_confidence != base[0].min_confidence  # jittered, not a clone
    assert pick_agents(base, len(base) + 3, seed=1) == agents  # deterministic
    with pytest.raises(ConfigError):
        pick_agents(base, 0, seed=1)


def test_default_settings_are_in_bars_with_a_relative_threshold():
    s = Settings()
    assert s.threshold is None and s.consensus_threshold() == (1.0, 0.5)
    assert s.window == Duration(3.0, "bars") and s.window.seconds(60.0) == 180.0
    assert s.scheme == "meta"
    assert s.narrative_half_life.in_bars and s.signal_cooldown.in_bars
    for p in load_personalities(None):
        assert p.holding_horizon.in_bars and p.cooldown.in_bars
        assert p.stop_loss.unit == "vol" and p.take_profit.unit == "vol"


@pytest.mark.parametrize(
    ("args", "needle", "code"),
    [
        (["run", "--ticks", "5", "--fast", "--json", "--personalities", "MISSING.yaml"],
         "MISSING.yaml: no such file", 1),
        (["run", "--ticks", "5", "--fast", "--json", "--scheme", "oracle"],
         "--scheme: must be one of", 2),
        (["run", "--ticks", "0", "--fast", "--json"], "--ticks must be at least 1", 2),
        (["run", "--ticks", "5", "--fast", "--json", "--redis-url", "redis://127.0.0.1:1/0"],
         "cannot reach Redis at redis://127.0.0.1:1/0", 1),
        (["personalities", "--personalities", "BAD"], "BAD: no such file", 1),
    ],
)
def test_cli_user_errors_are_one_line_without_traceback(args, needle, code, tmp_path):
    """A bad flag is a usage error (exit 2); a file or a server that fails, exit 1."""
    proc = subprocess.run(rawe_cmd(*args), capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rawe: error: ")
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_bad_personality_file_via_cli(tmp_path):
    path = write(tmp_path, "personalities:\n  - name: A\n    min_confidence: 2\n")
    proc = subprocess.run(rawe_cmd("run", "--fast", "--ticks", "3", "--personalities", str(path)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"{path}: personality 1 ('A'): field 'min_confidence'" in proc.stderr


def test_help_and_version_are_quick_and_import_nothing_heavy():
    code = ("import sys, runpy; sys.argv=['rawe','--help'];\n"
            "try: runpy.run_module('rawe_cli', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "heavy=[m for m in ('alpaca','redis','fakeredis','numpy','yaml') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    proc = subprocess.run([*rawe_cmd()[:1], "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    version = subprocess.run(rawe_cmd("--version"), capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("rawe ")
