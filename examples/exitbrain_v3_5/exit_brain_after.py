"""ExitBrain v3.5: decides, for each open position, how to exit it.

A runnable stand-in of the service, small enough to read in a minute: each
cycle it builds an exit plan (stop loss and take profit) for a few simulated
positions. The real service publishes its plans for the executor; this one
keeps them in memory, so that running it can never send an exit anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from exit_heartbeat import attach_heartbeat, decision, timed_cycle

logger = logging.getLogger(__name__)

CYCLE_PAUSE_S = 0.5

SIMULATED_POSITIONS = {"BTCUSDT": 97_000.0, "ETHUSDT": 3_400.0, "SOLUSDT": 190.0}


class ExitBrain:
    """The exit brain: one cycle plans an exit for every open position."""

    def __init__(self, redis: Any) -> None:
        """Create the service.

        Args:
            redis: The service's ``redis.asyncio`` client.
        """
        self.redis = redis
        self.plans_generated = 0
        self.exit_plans: dict[str, dict[str, float]] = {}
        self._task: asyncio.Task[None] | None = None

    @timed_cycle
    @decision
    async def process_cycle(self) -> None:
        """Plan an exit for each open position at its current price."""
        for symbol, entry_price in SIMULATED_POSITIONS.items():
            # Stands in for the price and volatility the service reads.
            await asyncio.sleep(random.uniform(0.002, 0.01))
            price = entry_price * random.uniform(0.98, 1.02)
            self.exit_plans[symbol] = {
                "stop_loss": round(price * 0.97, 2),
                "take_profit": round(price * 1.05, 2),
            }
            self.plans_generated += 1

    async def _run(self) -> None:
        while True:
            await self.process_cycle()
            await asyncio.sleep(CYCLE_PAUSE_S)

    async def start(self) -> None:
        """Start the decision cycles."""
        logger.info("ExitBrain v3.5 starting")
        self._task = asyncio.create_task(self._run())
        self.heartbeat = attach_heartbeat(self, positions=lambda s: s.plans_generated)

    async def stop(self) -> None:
        """Stop the decision cycles."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.heartbeat.stop()
        logger.info("ExitBrain v3.5 stopped after %d plans", self.plans_generated)
