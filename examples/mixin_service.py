"""The class style: a service that inherits HeartbeatMixin.

For services already written against a heartbeat mixin: the service times its
own cycles, reports them with ``set_cycle_time`` and keeps ``last_decision_ts``
itself. Only the import line changes when it moves to exit_heartbeat.

Run it on a Redis server embedded in the process, or on yours::

    python examples/mixin_service.py
    python examples/mixin_service.py --redis-url redis://localhost:6379/0
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import redis.asyncio

from exit_heartbeat import HeartbeatMixin
from exit_heartbeat.demo import ExampleOptions, run_example


class ExitBrainService(HeartbeatMixin):
    """Decides, cycle after cycle, whether to close each open position."""

    def __init__(
        self, redis_client: redis.asyncio.Redis, config: dict[str, Any] | None = None
    ) -> None:
        """Create the service.

        Args:
            redis_client: The service's Redis client.
            config: ``heartbeat_interval_s`` sets the seconds between beats.
        """
        config = config or {}
        HeartbeatMixin.__init__(self)
        self.redis = redis_client
        self.active_positions: dict[str, float] = {}
        self.last_decision_ts = 0.0
        self.running = True
        self.init_heartbeat(
            redis_client, interval=config.get("heartbeat_interval_s", 1.0)
        )

    async def run(self) -> None:
        """Run cycles until ``running`` is cleared, with the heartbeat on."""
        self.start_heartbeat()
        try:
            while self.running:
                start = time.time()
                await self._process_positions()
                self.set_cycle_time(int((time.time() - start) * 1000))
                self.last_decision_ts = time.time()
                await asyncio.sleep(1)
        finally:
            await self.stop_heartbeat()

    async def _process_positions(self) -> None:
        # Stands in for the exchange: a few positions, prices read slowly.
        self.active_positions = {"BTCUSDT": 0.25, "ETHUSDT": 3.0}
        for _symbol in self.active_positions:
            await asyncio.sleep(random.uniform(0.005, 0.02))


async def run(client: redis.asyncio.Redis, options: ExampleOptions) -> None:
    """Run the service for the time asked, then stop it cleanly."""
    service = ExitBrainService(
        client, config={"heartbeat_interval_s": options.interval_s}
    )
    task = asyncio.create_task(service.run())
    try:
        await asyncio.sleep(options.seconds)
    finally:
        service.running = False
        await task


if __name__ == "__main__":
    raise SystemExit(run_example(run, description=__doc__))
