"""`rawe weights --watch` and `rawe decisions --watch` ride out a Redis restart.

Each test starts a redis-server of its own on a free port (the shared one is never stopped),
watches in a pseudo-terminal, stops Redis, starts it again, and expects the view to say so
and then to carry on, until Ctrl-C (exit 130)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.procs import rawe_json, wait_until
from tests.pty_screen import PtyRawe

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="no redis-server binary")


class OwnRedis:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.tmp = tmp

    def _ping(self) -> bool:
        return subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                              text=True).stdout.strip() == "PONG"

    def start(self) -> None:
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port",
                        str(self.port), "--save", "", "--appendonly", "no", "--dir",
                        str(self.tmp)], check=True, capture_output=True)
        wait_until(self._ping, timeout=10)

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"],
                       capture_output=True)
        wait_until(lambda: not self._ping(), timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    r = OwnRedis(tmp_path)
    r.start()
    yield r
    r.stop()


def register(env: dict[str, str], agent: str) -> None:
    rawe_json("inject-signal", "--asset", "AAPL", "--direction", "long", "--agent", agent,
              "--register", "--json", env=env)


@pytest.mark.parametrize("command", ["weights", "decisions"])
def test_watch_reconnects_when_redis_blips(own_redis: OwnRedis, command: str) -> None:
    env = {"RAWE_REDIS_URL": own_redis.url, "RAWE_NAMESPACE": "watch"}
    register(env, "Ann")
    term = PtyRawe([command, "--watch"], cols=100, rows=30, env=env)
    try:
        first = "Ann" if command == "weights" else "nothing yet"
        term.wait_screen(lambda ls: any(first in ln for ln in ls), timeout=30)
        own_redis.stop()
        term.wait_screen(lambda ls: any("Redis unreachable since" in ln for ln in ls),
                         timeout=30)
        assert term.p.poll() is None  # still watching
        own_redis.start()  # back, and empty (no persistence)
        register(env, "Bob")
        again = "Bob" if command == "weights" else "updated"
        term.wait_screen(lambda ls: any(again in ln for ln in ls)
                         and not any("unreachable since" in ln for ln in ls), timeout=40)
    finally:
        code = term.interrupt()
    assert code == 130
    assert "Redis reachable again after" in term.text()
