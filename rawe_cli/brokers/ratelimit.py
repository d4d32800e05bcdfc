"""A token bucket for Alpaca's request-rate limit (about 200 requests a minute per account).

The bucket holds `burst` tokens and refills at ``(per_minute - burst) / 60`` a second, so no
60 seconds ever hold more than `per_minute` requests. A request takes a token; without one it
waits for the next. The first wait of a run of waits is said in one line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_PER_MINUTE = 200.0
DEFAULT_BURST = 40


class TokenBucket:
    def __init__(self, per_minute: float = DEFAULT_PER_MINUTE, burst: int = DEFAULT_BURST, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 say: Callable[[str], None] | None = None, what: str = "Alpaca") -> None:
        if per_minute <= 0:
            raise ValueError("the rate limit must be > 0 requests a minute")
        self.per_minute = per_minute
        self.burst = max(1, min(burst, int(per_minute) - 1)) if per_minute > 1 else 1
        self.rate = max(per_minute - self.burst, 1e-9) / 60.0  # tokens a second
        self.tokens = float(self.burst)
        self._clock, self._sleep, self.say, self.what = clock, sleep, say, what
        self._at = clock()
        self._lock = threading.Lock()
        self.throttling = False  # inside a run of waits (said once)
        self.waits = 0  # requests that waited
        self.waited = 0.0  # seconds waited in all

    def reserve(self, now: float) -> float:
        """Take a token at `now`; returns how long to wait for it (0: at once). Pure bookkeeping:
        the tokens may go below zero, which queues the callers behind each other."""
        self.tokens = min(float(self.burst), self.tokens + (now - self._at) * self.rate)
        self._at = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def acquire(self) -> float:
        """Wait (in the calling thread) until a request may go; returns the wait."""
        with self._lock:
            wait = self.reserve(self._clock())
            if wait <= 0:
                self.throttling = False
                return 0.0
            self.waits += 1
            self.waited += wait
            first = not self.throttling
            self.throttling = True
        if first and self.say is not None:
            self.say(f"{self.what} request rate at its limit ({self.per_minute:g} a minute): "
                     f"requests wait for their turn ({wait:.1f} s now)")
        self._sleep(wait)
        return wait
