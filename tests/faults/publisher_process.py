"""A publisher in a process of its own, for tests that kill it for real.

Run as ``python -m tests.faults.publisher_process URL STREAM INTERVAL_S``. It
prints ``ready`` once its first beat is in Redis. SIGTERM stops it cleanly
(a final ``STOPPED`` entry); SIGKILL, sent by a test, stops it the hard way.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import redis.asyncio

from exit_heartbeat import attach_heartbeat
from tests.faults.harness import CycleLoop, TradingService, wait_until


async def main(url: str, stream: str, interval_s: float) -> None:
    """Publish until SIGTERM, then stop the heartbeat cleanly."""
    client = redis.asyncio.from_url(url)
    service = TradingService(client)
    cycles = CycleLoop(service, period_s=0.05)
    cycles.start()
    heartbeat = attach_heartbeat(service, stream=stream, interval_s=interval_s)

    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await wait_until(lambda: heartbeat.published > 0, 30, "the first beat")
    print("ready", flush=True)

    await stopping.wait()
    await heartbeat.stop()
    await cycles.stop()
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
