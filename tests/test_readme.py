"""The README tells the truth: its command table is `rawe --help`'s, and every bad input in
its "Bad input" table with a command gets one line and the documented exit code."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import ROOT, rawe_cmd
from tests.test_errors import not_redis  # noqa: F401 - a fixture

README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def test_the_command_table_is_rawe_help() -> None:
    table = re.findall(r"^\| `rawe ([a-z-]+)` \|", section("Commands"), re.MULTILINE)
    out = subprocess.run(rawe_cmd("--help"), capture_output=True, text=True, timeout=30).stdout
    listed = out.split("Commands:", 1)[1]
    commands = re.findall(r"^  ([a-z-]+) ", listed, re.MULTILINE)
    assert sorted(table) == sorted(commands)


ROW = re.compile(r"^\|[^|]*\| `(rawe [^`]*)` \| (\d+) \| `([^`]*)`", re.MULTILINE)
PLACEHOLDERS = ("FILE", "DIR", "bt.png")  # tested with real files in test_errors, test_plot


def rows() -> list[tuple[str, int, str]]:
    found = [(cmd, int(code), msg) for cmd, code, msg in ROW.findall(section("Bad input"))]
    assert len(found) >= 20
    return [r for r in found if not any(p in r[0].split() for p in PLACEHOLDERS)
            and " FILE" not in r[0] and " DIR" not in r[0]]


@pytest.mark.parametrize(("command", "code", "message"), rows(), ids=lambda x: str(x)[:40])
def test_every_bad_input_of_the_readme(command: str, code: int, message: str,
                                       redis_url: str, not_redis: str) -> None:  # noqa: F811
    host_port = redis_url.split("://", 1)[1].split("/", 1)[0].split("@")[-1]
    fake = not_redis.split("://", 1)[1].split("/", 1)[0]

    def fill(text: str) -> str:
        return text.replace("HOST:8080", fake).replace("HOST:PORT", host_port)

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWE_")}
    env["RAWE_NO_DOTENV"] = "1"
    proc = subprocess.run(rawe_cmd(*fill(command).split()[1:]), capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=env)
    err = proc.stderr.strip()
    assert proc.returncode == code, (command, proc.returncode, err)
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, err
    expected = re.split(r"\.\.\.|\(\.\.\.\)|…", fill(message))[0].rstrip(" (")
    assert err.startswith("rawe: error: ") and expected in err, (expected, err)
