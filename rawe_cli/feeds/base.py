"""The Feed protocol: a source of market ticks (bars and narrative events at one time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Protocol

from rawe_cli.models import Bar, NarrativeEvent


@dataclass(frozen=True, slots=True)
class Tick:
    index: int
    timestamp: float  # event time of the bars and events
    regime: str  # the true regime when the feed knows it (synthetic), else ""
    bars: tuple[Bar, ...]
    events: tuple[NarrativeEvent, ...]


class Feed(Protocol):
    def ticks(self) -> AsyncIterator[Tick]:
        """Ticks in event-time order; ends when the feed has no more."""
        ...


async def paced(ticks: Iterator[Tick], tick_seconds: float, speed: float | None,
                max_lead: float | None = None) -> AsyncIterator[Tick]:
    """Yield ticks; with a speed, no faster than `speed` event seconds per wall second.

    With `max_lead` (and a speed), never more than `max_lead` event seconds ahead of the
    wall clock either: a world that starts at the wall clock runs at `speed` until it leads
    by that much, then at the wall clock's pace.
    """
    start = time.monotonic()
    wall = time.time()
    for tick in ticks:
        yield tick
        if speed:
            due = start + (tick.index + 1) * tick_seconds / speed
            if max_lead is not None:
                due = max(due, start + tick.timestamp + tick_seconds - max_lead - wall)
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)
