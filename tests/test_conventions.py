"""The conventions of the ecosystem: completion, -h, -v/-q/--log-level, --log-file with
timestamps, --tz, `rawe config show|init`, .env, Ctrl-C exits 130, "state saved" only where
something was saved."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

from rawe_cli.config import Settings, load_settings
from tests.conftest import ROOT, rawe_cmd
from tests.procs import Proc

RUN = ["run", "--ticks", "400", "--fast", "--no-dashboard"]


def rawe(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(rawe_cmd(*args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, cwd=cwd or ROOT)


def test_shell_completion_is_on() -> None:
    assert "--install-completion" in rawe("--help").stdout
    proc = subprocess.run(rawe_cmd(), capture_output=True, text=True, timeout=30,
                          env={**os.environ, "_RAWE_COMPLETE": "complete_bash",
                               "COMP_WORDS": "rawe ru", "COMP_CWORD": "1"})
    assert proc.stdout.split() == ["run"]


def test_verbosity_and_levels() -> None:
    normal = rawe(*RUN).stdout
    assert "decision d-" in normal and "settings: Settings(" not in normal
    verbose = rawe("-v", *RUN).stdout
    assert "settings: Settings(" in verbose
    quiet = rawe("-q", *RUN)
    assert quiet.returncode == 0
    assert "decision d-" not in quiet.stdout and "Summary" in quiet.stdout  # the report stays
    assert "decision d-" not in rawe("--log-level", "warning", *RUN).stdout
    assert "decision d-" not in rawe(*RUN, env={"RAWE_LOG_LEVEL": "error"}).stdout


def test_log_lines_carry_a_time_with_its_zone_and_tz_changes_the_display() -> None:
    utc = rawe(*RUN).stdout
    assert re.search(r"^\d\d:\d\d:\d\dZ decision d-", utc, re.MULTILINE)
    assert "updated UTC" in utc
    ny = rawe("--tz", "America/New_York", *RUN).stdout
    assert re.search(r"^\d\d:\d\d:\d\d-0[45]:00 decision d-", ny, re.MULTILINE)
    assert re.search(r"updated E[SD]T", ny)


def test_log_file_with_timestamps_and_levels(tmp_path: Path) -> None:
    log = tmp_path / "rawe.log"
    proc = rawe("-q", "--log-file", str(log), *RUN)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines and all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING)",
                                  ln) for ln in lines), lines[:3]
    assert any(" INFO    decision d-" in ln for ln in lines)
    rawe("--log-file", str(log), *RUN)
    assert len(log.read_text().splitlines()) > len(lines)  # appended
    bad = rawe("--log-file", str(tmp_path / "no" / "x.log"), *RUN)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_config_init_writes_a_file_that_reads_back_as_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rawe.yaml"
    proc = rawe("config", "init", str(path))
    assert proc.returncode == 0 and f"wrote {path}" in proc.stdout
    assert load_settings(path) == Settings()
    text = path.read_text()
    assert "# Symbols the synthetic world" in text and 'window: "3b"' in text
    again = rawe("config", "init", str(path))
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    assert rawe("config", "init", str(path), "--force").returncode == 0
    (tmp_path / "here").mkdir()
    default = rawe("config", "init", cwd=tmp_path / "here")
    assert default.returncode == 0 and (tmp_path / "here" / "rawe.yaml").exists()


def test_config_show_says_where_each_value_comes_from(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("seed: 3\nwindow: 5b\n")
    proc = rawe("config", "show", "-c", str(path), env={"RAWE_NAMESPACE": "desk",
                                                         "APCA_API_SECRET_KEY": "hush"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(rf"^seed: 3 +# {re.escape(str(path))}$", out, re.MULTILINE)
    assert re.search(r'^window: "5b" ', out, re.MULTILINE)
    assert re.search(r"^namespace: desk +# env RAWE_NAMESPACE$", out, re.MULTILINE)
    assert re.search(r"^scheme: meta +# default$", out, re.MULTILINE)
    assert "APCA_API_SECRET_KEY=set" in out and "hush" not in out
    doc = json.loads(rawe("config", "show", "--json", env={"RAWE_NAMESPACE": ""}).stdout)
    assert doc["settings"]["symbols"] == list(Settings().symbols)
    assert doc["sources"]["seed"] == "default"


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("RAWE_NAMESPACE=from-dotenv\nAPCA_API_KEY_ID=PKDOTENV\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("RAWE_NAMESPACE",
                                                               "APCA_API_KEY_ID")}

    def show(**extra: str) -> dict:  # type: ignore[type-arg]
        proc = subprocess.run(rawe_cmd("config", "show", "--json"), capture_output=True,
                              text=True, timeout=60, cwd=tmp_path, env={**clean, **extra})
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    doc = show()
    assert doc["settings"]["namespace"] == "from-dotenv"
    assert doc["env"]["APCA_API_KEY_ID"] == "set"
    assert doc["dotenv"] == str(tmp_path / ".env")
    assert show(RAWE_NAMESPACE="mine")["settings"]["namespace"] == "mine"
    assert show(RAWE_NO_DOTENV="1")["settings"]["namespace"] == "rawe"


def test_ctrl_c_exits_130_and_sigterm_143_after_a_clean_stop(tmp_path: Path) -> None:
    for sig, code, by in ((signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")):
        p = Proc(["run", "--no-dashboard", "--speed", "200"], tmp_path / f"run{sig}.log")
        p.wait_for("bar size")
        p.p.send_signal(sig)
        assert p.p.wait(30) == code
        p.stop()
        text = p.text()
        assert "Summary" in text and f"stopped by {by}" in text
        # the embedded store lives in memory: nothing to claim was saved
        assert "nothing was saved" in text and "state saved" not in text


def test_interrupted_one_shot_commands_exit_130(tmp_path: Path) -> None:
    p = Proc(["backtest", "--ticks", "200000"], tmp_path / "bt.log")
    p.wait_for("backtest:")
    p.p.send_signal(signal.SIGINT)
    assert p.p.wait(30) == 130
    p.stop()
    assert "rawe: interrupted" in p.text() and "Traceback" not in p.text()


def test_state_saved_only_by_who_saved_it(tmp_path: Path, redis_url: str, namespace: str
                                          ) -> None:
    env = {"RAWE_REDIS_URL": redis_url, "RAWE_NAMESPACE": namespace}
    active = Proc(["consensus", "--no-dashboard"], tmp_path / "a.log", env)
    active.wait_for("active:")
    standby = Proc(["consensus", "--no-dashboard"], tmp_path / "b.log", env)
    standby.wait_for("standing by")
    assert standby.stop() == 130
    assert active.stop() == 130
    assert "consensus stopped; standing by, held nothing: nothing to save" in standby.text()
    assert "consensus stopped; state saved" in active.text()
    proc = rawe("run", "--ticks", "50", "--fast", "--no-dashboard", "--redis-url", redis_url,
                "--namespace", namespace)
    assert proc.returncode == 0 and "state saved" not in proc.stdout  # not stopped by hand
