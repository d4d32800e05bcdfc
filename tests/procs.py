"""Helpers to run rawe processes in tests: output to a file, wait for a line, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT, rawe_cmd


class Proc:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._fh = open(log, "w")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, **(env or {})}
        self.p = subprocess.Popen(rawe_cmd(*args), stdout=self._fh, stderr=subprocess.STDOUT,
                                  cwd=ROOT, env=full_env)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_for(self, needle: str, timeout: float = 60.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if text.count(needle) >= count:
                return text
            if self.p.poll() is not None:
                raise AssertionError(f"process exited ({self.p.returncode}):\n{text}")
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not seen in {timeout} s:\n{self.text()}")

    def kill9(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)
        self._fh.close()

    def stop(self, timeout: float = 15.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self._fh.close()
        return self.p.returncode


def rawe_json(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> object:
    proc = subprocess.run(rawe_cmd(*args), capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def rawe_out(*args: str, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(rawe_cmd(*args), capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def wait_until(predicate, timeout: float = 60.0, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met in {timeout} s (last: {last!r})")


async def take_over(client, keys, owner: str, marker: str, ttl_ms: int = 10_000,  # type: ignore[no-untyped-def]
                    timeout: float = 10.0):
    """A successor's lease, once the holder's has run out (polled, not slept for)."""
    import asyncio

    from rawe_cli.bus.lease import Lease

    deadline = time.monotonic() + timeout
    lease = Lease(client, keys, owner, ttl_ms)
    while time.monotonic() < deadline:
        got = await lease.try_acquire(marker)
        if got.outcome == "ok":
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"{owner} could not take the lease in {timeout} s")


async def claimed(consumer, want: int, timeout: float = 10.0) -> int:  # type: ignore[no-untyped-def]
    """Claim idle entries until `want` were taken (an entry must be idle for 10 ms first)."""
    import asyncio

    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        total += await consumer.claim_stale(time.time(), min_idle_ms=10)
        if total >= want:
            return total
        await asyncio.sleep(0.02)
    raise AssertionError(f"claimed {total} of {want} in {timeout} s")
