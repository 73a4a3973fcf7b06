"""A bounded soak: 200 services beating at 10 Hz on one event loop.

One loop hosts every service, its cycle loop and its heartbeat, all against
one real redis-server, as a busy host would. A few services fail on purpose:
some whose cycles raise, some whose stream key is of the wrong type so that
every publish fails. At the end every schedule slot must be accounted for,
every stream trimmed, memory flat, and the loop's lag is reported.

The soak lasts 60 s by default; set EXIT_HEARTBEAT_SOAK_S to change it. The
first half measures the loop's lag, the second half memory under tracemalloc.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import statistics
import tracemalloc
from collections.abc import Callable

import pytest
import redis.asyncio

import exit_heartbeat
from exit_heartbeat import Heartbeat, Status, attach_heartbeat, decision, timed_cycle
from tests.server import RedisServer

pytestmark = pytest.mark.redis_server

SERVICES = 200
INTERVAL_S = 0.1
MAXLEN = 50
SOAK_S = float(os.environ.get("EXIT_HEARTBEAT_SOAK_S", "60"))
WARM_UP_S = 3.0

# Services whose cycles raise, and services whose stream is a plain string.
RAISING = range(0, 3)
WRONG_TYPE = range(3, 6)

# Approximate trimming removes whole stream nodes only, so a stream may hold
# up to one node (100 entries by default) above its maxlen.
TRIM_SLACK = 100

# Memory may grow by this much between the two snapshots: a floor for what
# each heartbeat may hold at one moment and not the other (a publish in
# flight, a DEGRADED reason where there was none), and a little per second.
# Keeping one entry's fields per beat grows by megabytes in the traced half
# and fails this by far.
GROWTH_FLOOR_BYTES = 5_000 * SERVICES
GROWTH_PER_S_BYTES = 16_000

# A slot counted at the edges of the measuring window may fall either side.
SLOT_MARGIN = 2


# Memory that counts: what the library and the Redis client hold.
_LIBRARY_AND_REDIS = [
    tracemalloc.Filter(True, f"{os.path.dirname(exit_heartbeat.__file__)}/*"),
    tracemalloc.Filter(True, f"{os.path.dirname(redis.__file__)}/*"),
    tracemalloc.Filter(True, f"{os.path.dirname(asyncio.__file__)}/*"),
]


class SoakService:
    """A service that decides on every cycle, or raises if told to."""

    def __init__(self, client: redis.asyncio.Redis, raises: bool) -> None:
        self.redis = client
        self.active_positions = {"BTC-PERP": 1}
        self.raises = raises

    @timed_cycle
    @decision
    async def process_cycle(self) -> None:
        """One decision cycle; raising ones fail like a broken exchange feed."""
        await asyncio.sleep(0)
        if self.raises:
            raise ConnectionResetError("exchange feed dropped")


async def _cycle_forever(service: SoakService) -> None:
    while True:
        with contextlib.suppress(ConnectionResetError):
            await service.process_cycle()
        await asyncio.sleep(INTERVAL_S)


async def _measure_lag(lags_ms: list[float], period_s: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period_s
        await asyncio.sleep(period_s)
        lags_ms.append(max(0.0, (loop.time() - due) * 1000.0))


def _stream(index: int) -> str:
    return f"quantum:stream:soak_{index:03d}.heartbeat"


async def test_soak_200_services_account_for_every_slot(
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    record_property: Callable[[str, object], None],
) -> None:
    """200 services at 10 Hz: every slot counted, streams trimmed, memory flat."""
    caplog.set_level(logging.WARNING, logger="exit_heartbeat")
    loop = asyncio.get_running_loop()
    client = redis_server.client(max_connections=2 * SERVICES)
    for index in WRONG_TYPE:
        await client.set(_stream(index), "not a stream")

    services = [SoakService(client, i in RAISING) for i in range(SERVICES)]
    tasks: list[asyncio.Task[None]] = []
    heartbeats: list[Heartbeat] = []
    attached_at: list[float] = []
    for index, service in enumerate(services):
        # Services of one host start one after another, not all at once.
        await asyncio.sleep(INTERVAL_S / SERVICES)
        tasks.append(loop.create_task(_cycle_forever(service)))
        attached_at.append(loop.time())
        heartbeats.append(
            attach_heartbeat(
                service, stream=_stream(index), interval_s=INTERVAL_S, maxlen=MAXLEN
            )
        )
    lags_ms: list[float] = []
    tasks.append(loop.create_task(_measure_lag(lags_ms)))

    # The loop's lag is measured untraced: tracing every allocation doubles
    # the cost of the whole loop, which would be measured instead.
    await asyncio.sleep(SOAK_S / 2)
    lags = sorted(lags_ms)

    # Memory is compared between two moments once tracing is warm, so that
    # objects made before tracing began and freed later do not look like
    # growth; what the test itself keeps (logs, lag samples) is left out.
    tracemalloc.start()
    await asyncio.sleep(WARM_UP_S)
    gc.collect()
    warm = tracemalloc.take_snapshot().filter_traces(_LIBRARY_AND_REDIS)
    traced_s = max(1.0, SOAK_S / 2 - WARM_UP_S)
    await asyncio.sleep(traced_s)
    gc.collect()
    end = tracemalloc.take_snapshot().filter_traces(_LIBRARY_AND_REDIS)
    tracemalloc.stop()

    # Snapshots block the loop; a second of normal running lets every beat
    # that was held up wake and count its slots before they are checked.
    lags_ms.clear()
    await asyncio.sleep(1.0)
    ended_at = loop.time()
    counts = [(h.published, h.failed, h.skipped) for h in heartbeats]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(h.stop() for h in heartbeats))

    growth = end.compare_to(warm, "filename")
    growth_bytes = sum(stat.size_diff for stat in growth)
    p99_ms = lags[int(0.99 * (len(lags) - 1))]
    print(
        f"\nsoak: {SERVICES} services at {1 / INTERVAL_S:g} Hz for {SOAK_S:g}s: "
        f"published={sum(c[0] for c in counts)} "
        f"failed={sum(c[1] for c in counts)} skipped={sum(c[2] for c in counts)} "
        f"loop_lag_p50_ms={statistics.median(lags):.1f} "
        f"loop_lag_p99_ms={p99_ms:.1f} "
        f"memory_growth_bytes={growth_bytes}"
    )
    print("\n".join(str(stat) for stat in growth[:5]))
    record_property("loop_lag_p99_ms", round(p99_ms, 1))
    record_property("memory_growth_bytes", growth_bytes)

    # Slots whose time has come but whose beat has not woken yet are not
    # counted anywhere; the worst lag seen bounds how many there can be.
    pending = math.ceil(max(lags_ms) / 1000.0 / INTERVAL_S) + SLOT_MARGIN
    for index, (done, failed, skipped) in enumerate(counts):
        slots = int((ended_at - attached_at[index]) / INTERVAL_S) + 1
        accounted = done + failed + skipped
        assert slots - pending <= accounted <= slots + 1, index
        if index in WRONG_TYPE:
            assert done == 0
    lengths = await asyncio.gather(
        *(client.xlen(_stream(i)) for i in range(SERVICES) if i not in WRONG_TYPE)
    )
    assert max(lengths) <= MAXLEN + TRIM_SLACK
    assert growth_bytes < GROWTH_FLOOR_BYTES + GROWTH_PER_S_BYTES * traced_s

    newest = await client.xrevrange(_stream(RAISING[0]), count=2)
    assert newest[1][1][b"status"] == Status.DEGRADED.value.encode()
    failures = [r for r in caplog.records if "publish failed" in r.getMessage()]
    wrong_type = [r for r in failures if "WRONGTYPE" in r.getMessage()]
    assert len(wrong_type) == len(WRONG_TYPE)
    await client.aclose()
