"""Run rawe in a pseudo-terminal of a given size and read its screen (pyte emulates it)."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable

import pyte

from tests.conftest import ROOT, rawe_cmd


class PtyRawe:
    def __init__(self, args: list[str], cols: int = 80, rows: int = 24,
                 env: dict[str, str] | None = None) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        full = {**os.environ, "TERM": "xterm-256color", **(env or {})}
        for var in ("COLUMNS", "LINES", "NO_COLOR"):
            full.pop(var, None)
        self.p = subprocess.Popen(rawe_cmd(*args), stdin=slave, stdout=slave, stderr=slave,
                                  cwd=ROOT, env=full, start_new_session=True)
        os.close(slave)
        self.master = master

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self.master], [], [], min(left, 0.05))
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.raw.extend(data)
                self.stream.feed(data)

    def lines(self) -> list[str]:
        return list(self.screen.display)

    def wait_screen(self, pred: Callable[[list[str]], bool], timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.1)
            if pred(self.lines()):
                return self.lines()
            if self.p.poll() is not None:
                self.pump(0.2)
                break
        raise AssertionError("screen never matched:\n" + "\n".join(self.lines())
                             + f"\n(exit {self.p.poll()})")

    def interrupt(self, timeout: float = 20) -> int:
        """Ctrl-C (SIGINT to the process), then read until it exits; its exit code."""
        self.p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self.p.poll() is None and time.monotonic() < deadline:
            self.pump(0.1)
        self.pump(0.3)
        if self.p.poll() is None:
            self.p.kill()
        code = self.p.wait(5)
        os.close(self.master)
        return code

    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")
