"""The recommended style: two decorators and attach_heartbeat.

The service marks its cycle method with ``@timed_cycle`` and ``@decision``,
attaches the heartbeat when it starts and stops it when it stops. Nothing else
in the service changes.

Run it on a Redis server embedded in the process, or on yours::

    python examples/decorated_service.py
    python examples/decorated_service.py --redis-url redis://localhost:6379/0
"""

from __future__ import annotations

import asyncio
import random

import redis.asyncio

from exit_heartbeat import Heartbeat, attach_heartbeat, decision, timed_cycle
from exit_heartbeat.demo import ExampleOptions, run_example

# Pause between two cycles of the service.
CYCLE_PAUSE_S = 0.25


class ExitBrain:
    """Decides, cycle after cycle, whether to close each open position."""

    def __init__(self, redis: redis.asyncio.Redis, interval_s: float = 1.0) -> None:
        """Create the service.

        Args:
            redis: The service's Redis client; the heartbeat publishes with it.
            interval_s: Seconds between two heartbeats.
        """
        self.redis = redis
        self.interval_s = interval_s
        self.active_positions = {"BTCUSDT": 0.25, "ETHUSDT": 3.0, "SOLUSDT": 40.0}
        self.exits_planned = 0
        self._task: asyncio.Task[None] | None = None
        self.heartbeat: Heartbeat | None = None

    @timed_cycle
    @decision
    async def process_cycle(self) -> None:
        """Look at every open position and decide whether to exit it."""
        for _symbol in self.active_positions:
            # Stands in for reading prices and risk from the exchange.
            await asyncio.sleep(random.uniform(0.002, 0.01))
            if random.random() < 0.1:
                self.exits_planned += 1

    async def _run(self) -> None:
        while True:
            await self.process_cycle()
            await asyncio.sleep(CYCLE_PAUSE_S)

    async def start(self) -> None:
        """Start the cycles and the heartbeat."""
        self._task = asyncio.create_task(self._run())
        self.heartbeat = attach_heartbeat(self, interval_s=self.interval_s)

    async def stop(self) -> None:
        """Stop the cycles, then the heartbeat, which publishes STOPPED."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.heartbeat is not None:
            await self.heartbeat.stop()


async def run(client: redis.asyncio.Redis, options: ExampleOptions) -> None:
    """Run the service for the time asked, then stop it cleanly."""
    service = ExitBrain(client, interval_s=options.interval_s)
    await service.start()
    try:
        await asyncio.sleep(options.seconds)
    finally:
        await service.stop()


if __name__ == "__main__":
    raise SystemExit(run_example(run, description=__doc__))
