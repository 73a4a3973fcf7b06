"""No change to the service at all: attach_heartbeat reads what it keeps.

Many services already record when they last decided (``last_decision_ts``)
and how long their last cycle took (``_last_cycle_ms``). ``attach_heartbeat``
reads those attributes, so such a service can be watched from the code that
starts it, with not one line of the service changed.

Run it on a Redis server embedded in the process, or on yours::

    python examples/direct_service.py
    python examples/direct_service.py --redis-url redis://localhost:6379/0
"""

from __future__ import annotations

import asyncio
import random
import time

import redis.asyncio

from exit_heartbeat import attach_heartbeat
from exit_heartbeat.demo import ExampleOptions, run_example


class LegacyExitBrain:
    """An existing service, left exactly as it is."""

    def __init__(self, redis_client: redis.asyncio.Redis) -> None:
        """Create the service.

        Args:
            redis_client: The service's Redis client.
        """
        self.redis = redis_client
        self.active_positions = {"BTCUSDT": 0.25, "ETHUSDT": 3.0, "XRPUSDT": 900.0}
        self.last_decision_ts = 0.0
        self._last_cycle_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _cycle(self) -> None:
        started = time.perf_counter()
        for _symbol in self.active_positions:
            await asyncio.sleep(random.uniform(0.002, 0.01))
        self._last_cycle_ms = (time.perf_counter() - started) * 1000
        self.last_decision_ts = time.time()

    async def _run(self) -> None:
        while True:
            await self._cycle()
            await asyncio.sleep(0.25)

    async def start(self) -> None:
        """Start the cycles."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the cycles."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def run(client: redis.asyncio.Redis, options: ExampleOptions) -> None:
    """Start the service, watch it from outside, stop both cleanly."""
    service = LegacyExitBrain(client)
    await service.start()
    heartbeat = attach_heartbeat(service, interval_s=options.interval_s)
    try:
        await asyncio.sleep(options.seconds)
    finally:
        await service.stop()
        await heartbeat.stop()


if __name__ == "__main__":
    raise SystemExit(run_example(run, description=__doc__))
