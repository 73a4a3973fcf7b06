"""What the fault tests share: a host service, its cycle loop, stream reads.

The host service stands in for an Exit Brain: a decorated cycle that runs on
a short fixed period, so that any stall of the event loop caused by the
heartbeat shows up as a gap between two cycles.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import redis.asyncio

from exit_heartbeat import HeartbeatEntry, decision, decode_entry, timed_cycle

STREAM = "quantum:stream:exit_brain.heartbeat"


class TradingService:
    """A stand-in Exit Brain with positions open and one decorated cycle."""

    def __init__(self, client: Any) -> None:
        self.redis = client
        self.active_positions = {"BTC-PERP": 1, "ETH-PERP": 2}

    @timed_cycle
    @decision
    async def process_cycle(self) -> None:
        """Decide nothing, quickly, as a healthy service does most cycles."""
        await asyncio.sleep(0)


class CycleLoop:
    """Runs a service's cycles on a fixed period and notes when each began.

    Args:
        service: The service whose ``process_cycle`` is run.
        period_s: The pause between two cycles.
    """

    def __init__(self, service: TradingService, period_s: float) -> None:
        self._service = service
        self._period_s = period_s
        self._task: asyncio.Task[None] | None = None
        self.starts: list[float] = []

    def start(self) -> None:
        """Start cycling on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop cycling and wait until the loop task is gone."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.starts.append(loop.time())
            await self._service.process_cycle()
            await asyncio.sleep(self._period_s)

    def between(self, begin: float, end: float) -> list[float]:
        """Start times of the cycles that began in ``[begin, end)``."""
        return [t for t in self.starts if begin <= t < end]

    def rate_hz(self, begin: float, end: float) -> float:
        """Cycles per second over ``[begin, end)``."""
        return len(self.between(begin, end)) / (end - begin)

    def max_gap_s(self, begin: float, end: float) -> float:
        """The longest pause between two cycle starts in ``[begin, end)``."""
        starts = self.between(begin, end)
        return max((b - a for a, b in itertools.pairwise(starts)), default=0.0)


class RecordingRedis(redis.asyncio.Redis):
    """A client that remembers, for each XADD that returned, the entry ID.

    It also counts the XADDs under way at once, which must never exceed one.

    The test then checks that every ID the publisher was given belongs to the
    entry it sent: a reply read out of step would pair a seq with the ID of
    an older entry.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replies: list[tuple[int, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def xadd(self, name: Any, fields: Any, *args: Any, **kwargs: Any) -> Any:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = await super().xadd(name, fields, *args, **kwargs)
        finally:
            self.in_flight -= 1
        entry_id = reply.decode() if isinstance(reply, bytes) else str(reply)
        self.replies.append((int(fields["seq"]), entry_id))
        return reply


async def read_entries(
    client: redis.asyncio.Redis, stream: str = STREAM
) -> list[tuple[str, HeartbeatEntry]]:
    """Every entry of ``stream``, decoded, oldest first, with its ID."""
    rows = await client.xrange(stream)
    return [(entry_id.decode(), decode_entry(fields)) for entry_id, fields in rows]


async def wait_until(
    predicate: Callable[[], bool], timeout_s: float, what: str
) -> None:
    """Poll ``predicate`` every 10 ms; fail the test after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(0.01)
