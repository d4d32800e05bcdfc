"""One error style: every user mistake is one line `rawe: error: ...` with a hint, exit 2 for
usage and 1 for runtime, never a traceback (the README's "Bad input" table, case by case)."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import rawe_cmd


def rawe(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(rawe_cmd(*args), capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def one_line(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("rawe: error: "), err
    assert needle in err, err
    return err


@pytest.mark.parametrize(("args", "needle"), [
    (["run", "--tiks", "5"], "no such option: --tiks (did you mean --ticks?); see 'rawe run "
     "--help'"),
    (["run", "--ticks", "many"], "invalid value for '--ticks'"),
    (["inject-signal", "--direction", "long"], "missing option '--asset'; see 'rawe "
     "inject-signal --help'"),
    (["consensus", "--lease-ms", "10"], "invalid value for '--lease-ms'"),
    (["rn"], "no such command 'rn'; did you mean 'run'?"),
    (["version"], "no such command 'version'; did you mean 'rawe --version'?"),
    (["run", "--ticks", "0"], "--ticks must be at least 1"),
    (["run", "--scheme", "oracle"], "--scheme: must be one of majority"),
    (["run", "--agents", "0"], "--agents must be at least 1"),
    (["run", "--speed", "0"], "--speed must be > 0"),
    (["run", "--window", "5x"], "--window: "),
    (["run", "--bar-size", "3b"], "--bar-size: "),
    (["backtest", "--data", "X", "--scenario", "momentum"], "not both"),
    (["backtest", "--scenario", "bogus"], "unknown scenario 'bogus'"),
    (["inject-signal", "--asset", "AAPL", "--direction", "up"], "--direction must be long or"),
    (["weights", "--watch", "--json"], "--watch and --json do not go together"),
    (["--tz", "Mars/Olympus", "weights"], "--tz: unknown time zone 'Mars/Olympus'"),
    (["--log-level", "loud", "weights"], "--log-level must be one of"),
    (["-v", "-q", "weights"], "-v and -q do not go together"),
    (["run", "--broker", "kraken"], "unknown broker 'kraken'"),
])
def test_usage_errors_exit_2(args: list[str], needle: str) -> None:
    one_line(rawe(*args, env={"RAWE_REDIS_URL": "redis://127.0.0.1:1/0"}), 2, needle)


def test_no_arguments_prints_the_help() -> None:
    proc = rawe()
    assert proc.returncode == 0 and "Usage: rawe" in proc.stdout and proc.stderr == ""


def test_h_is_help_everywhere() -> None:
    for args in (["-h"], ["run", "-h"], ["config", "-h"], ["config", "init", "-h"]):
        proc = rawe(*args)
        assert proc.returncode == 0 and "Usage: rawe" in proc.stdout, args


# -- files ---------------------------------------------------------------------------------


def test_a_latin1_byte_in_a_personalities_file(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_bytes(b"personalities:\n  - name: Ren\xe9\n")
    err = one_line(rawe("run", "--ticks", "3", "--fast", "--json", "-p", str(p)), 1,
                   f"{p} line 2, column 14: not UTF-8 text (byte 0xe9)")
    assert err.endswith("save the file as UTF-8")


def test_a_latin1_byte_in_a_settings_file(tmp_path: Path) -> None:
    s = tmp_path / "s.yaml"
    s.write_bytes(b"# r\xe9glages\nseed: 3\n")
    one_line(rawe("run", "--ticks", "3", "--fast", "--json", "-c", str(s)), 1,
             f"{s} line 1, column 4: not UTF-8 text (byte 0xe9)")
    one_line(rawe("config", "show", "-c", str(s)), 1, "not UTF-8 text")


def test_yaml_files_with_a_bom_load(tmp_path: Path) -> None:
    s = tmp_path / "s.yaml"
    s.write_bytes(b"\xef\xbb\xbfseed: 3\n")
    p = tmp_path / "p.yaml"
    p.write_bytes("\ufeffpersonalities:\n  - name: René\n".encode())
    proc = rawe("run", "--ticks", "3", "--fast", "--json", "-c", str(s), "-p", str(p),
                "-n", "1")
    assert proc.returncode == 0, proc.stderr
    assert '"name": "Ren\\u00e9"' in proc.stdout


def test_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    one_line(rawe("run", "--ticks", "3", "--fast", "-c", str(tmp_path / "nope.yaml")), 1,
             "nope.yaml: no such file")
    one_line(rawe("run", "--ticks", "3", "--fast", "-p", str(tmp_path)), 1,
             "is a directory, not a file")


# -- Redis that is not there, not Redis, or refuses us ----------------------------------------


@pytest.fixture
def not_redis() -> Iterator[str]:
    """A TCP port that answers like an HTTP server."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"redis://127.0.0.1:{srv.getsockname()[1]}/0"
    stop.set()
    t.join(2)
    srv.close()


def _redis_cases(redis_url: str, not_redis: str) -> list[tuple[str, str]]:
    base = redis_url.rsplit("/", 1)[0]
    host = base.split("://", 1)[1]
    return [(not_redis, "does not answer as Redis (Protocol error"),
            (f"{base}/99", "database 99 does not exist (DB index is out of range)"),
            (f"redis://nobody:wrong@{host}/0", "refused the credentials"),
            ("redis://127.0.0.1:1/0", "cannot reach Redis at redis://127.0.0.1:1/0")]


@pytest.mark.parametrize("command", [["weights"], ["decisions"], ["consensus", "--no-dashboard"],
                                     ["agents", "--ticks", "1"],
                                     ["inject-signal", "--asset", "A", "--direction", "long"]])
def test_redis_refusals_are_one_line(redis_url: str, not_redis: str, command: list[str]) -> None:
    for url, needle in _redis_cases(redis_url, not_redis):
        err = one_line(rawe(*command, "--redis-url", url), 1, needle)
        assert "wrong" not in err  # the password is never printed


def test_doctor_reports_redis_refusals_as_a_failed_check(redis_url: str, not_redis: str
                                                         ) -> None:
    for url, needle in _redis_cases(redis_url, not_redis):
        proc = rawe("doctor", "--redis-url", url, env={"APCA_API_KEY_ID": ""})
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        first = proc.stdout.splitlines()[0]
        assert first.startswith("FAIL  redis") and needle in first, first
