"""A private redis-server on a free loopback port, for tests that stop or restart Redis.

Never the shared Redis of RAWE_TEST_REDIS_URL: other tests run against that one.
Every wait polls for its condition with a generous limit.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.procs import wait_until

needs_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None,
                                        reason="no redis-server binary")


class RedisServer:
    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.port = free_port()
        self.dir = directory
        self.appendonly = appendonly
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.starts = 0

    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                              text=True, timeout=10)

    def up(self) -> bool:
        try:
            return self._cli("ping").stdout.strip() == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def start(self) -> None:
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1",
                        "--port", str(self.port), "--save", "",
                        "--appendonly", "yes" if self.appendonly else "no",
                        "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
                       check=True, capture_output=True, timeout=10)
        wait_until(self.up, timeout=15, every=0.02)
        self.starts += 1

    def stop(self) -> None:
        """Shut down (with AOF on, after writing it out; without, losing everything)."""
        self._cli("shutdown") if self.appendonly else self._cli("shutdown", "nosave")
        wait_until(lambda: not self.up(), timeout=15, every=0.02)

    def cli(self, *args: str) -> str:
        return self._cli(*args).stdout.strip()
