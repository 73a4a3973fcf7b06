"""Helpers for testing code that uses exit_heartbeat, without real time.

`ManualClock` stands in for the publisher's clock: time moves only when the
test says so, and every sleeper whose moment has come wakes up in order, so a
test of an hour of beats runs in milliseconds and gives the same result on any
machine.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math

__all__ = ["ManualClock"]

# Each sleeper woken up may need a few passes of the loop to finish its work
# (a publish through an in-memory Redis takes several); this many is ample.
_SETTLE_PASSES = 200


def _check_span(method: str, seconds: float) -> None:
    # A monotonic clock that steps back would break the code under test in
    # ways no real clock can, so a negative or endless step is a test bug.
    finite = isinstance(seconds, int | float) and math.isfinite(seconds)
    if not finite or seconds < 0:
        raise ValueError(
            f"ManualClock.{method}() moves time forward: seconds must be a "
            f"finite number, 0 or more, got {seconds!r}"
        )


class ManualClock:
    """A clock that moves only when `advance` or `block` is called.

    Pass it to `attach_heartbeat` (``clock=``) or any other place that takes a
    clock. It must be used from one event loop.
    """

    def __init__(self, start_s: float = 1_000.0, wall_s: float = 1_800_000_000.0):
        """Create a clock.

        Args:
            start_s: The first reading of `monotonic`.
            wall_s: The first reading of `time`.
        """
        self._now = start_s
        self._wall_offset = wall_s - start_s
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        """The current monotonic reading."""
        return self._now

    def time(self) -> float:
        """The current wall-clock reading."""
        return self._now + self._wall_offset

    def step_wall(self, delta_s: float) -> None:
        """Step the wall clock alone, as NTP might; monotonic time is unmoved."""
        self._wall_offset += delta_s

    async def sleep(self, delay_s: float) -> None:
        """Wait until `advance` or `block` moves the clock past the deadline."""
        if delay_s <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + delay_s, next(self._order), future))
        await future

    async def settle(self) -> None:
        """Let every task that can run do so, without moving the clock."""
        for _ in range(_SETTLE_PASSES):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own deadline.

        This is time passing on a healthy loop: every sleeper runs on time.

        Args:
            seconds: How far to move, 0 or more.

        Raises:
            ValueError: ``seconds`` is negative or not a finite number.
        """
        _check_span("advance", seconds)
        end = self._now + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= end:
            deadline = self._sleepers[0][0]
            self._now = max(self._now, deadline)
            self._wake_due()
            await self.settle()
        self._now = end
        await self.settle()

    async def block(self, seconds: float) -> None:
        """Move time forward at once, as if the event loop had been blocked.

        Sleepers due during the gap wake only afterwards, all of them late.

        Args:
            seconds: How long the loop was blocked, 0 or more.

        Raises:
            ValueError: ``seconds`` is negative or not a finite number.
        """
        _check_span("block", seconds)
        self._now += seconds
        self._wake_due()
        await self.settle()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
