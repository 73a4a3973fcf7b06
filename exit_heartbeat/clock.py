"""Clocks: the one the publisher runs on, and the protocol tests replace it by."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "LoopClock"]


class Clock(Protocol):
    """What the publisher needs from time.

    ``monotonic`` measures durations and schedules beats; ``time`` stamps what
    leaves the process; ``sleep`` waits on the monotonic clock.
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never steps back."""

    def time(self) -> float:
        """Unix wall-clock seconds."""

    async def sleep(self, delay_s: float) -> None:
        """Wait ``delay_s`` seconds of the monotonic clock."""


class LoopClock:
    """The event loop's own clock, the wall clock, and ``asyncio.sleep``.

    Scheduling on the loop's clock keeps beats on the same time base as the
    loop's timers, whichever loop implementation runs them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind the clock to ``loop``.

        Args:
            loop: The loop the publisher runs on.
        """
        self._loop = loop

    def monotonic(self) -> float:
        """The loop's time."""
        return self._loop.time()

    def time(self) -> float:
        """Unix wall-clock seconds."""
        return time.time()

    async def sleep(self, delay_s: float) -> None:
        """Sleep on the loop's clock."""
        await asyncio.sleep(delay_s)
