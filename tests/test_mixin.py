"""Tests of `HeartbeatMixin`, for services written in the class style."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import fakeredis
import pytest

from exit_heartbeat import (
    DEFAULT_STREAM,
    AttachError,
    ConfigError,
    HeartbeatMixin,
    HeartbeatState,
    Status,
    attach_heartbeat,
)
from exit_heartbeat.testing import ManualClock


class ExitBrainService(HeartbeatMixin):
    """The specification's class-style service, sleeping on the test's clock.

    Only two things differ from the specification's code: the clock is passed
    to init_heartbeat, and the pause between cycles sleeps on that clock
    instead of ``asyncio.sleep`` so that no real time passes.
    """

    def __init__(self, redis_client: Any, clock: ManualClock, config: Any = None):
        HeartbeatMixin.__init__(self)
        self.redis = redis_client
        self.active_positions: dict[str, float] = {}
        self.last_decision_ts = 0.0
        self.running = True
        self.clock = clock
        self.cycles_run = 0
        self.init_heartbeat(redis_client, interval=1.0, clock=clock)

    async def _process_positions(self) -> None:
        self.cycles_run += 1

    async def run(self) -> None:
        self.start_heartbeat()
        try:
            while self.running:
                start = time.time()
                await self._process_positions()
                self.set_cycle_time(int((time.time() - start) * 1000))
                self.last_decision_ts = time.time()
                await self.clock.sleep(1)
        finally:
            await self.stop_heartbeat()


async def read_entries(client: Any) -> list[dict[str, str]]:
    """Every heartbeat entry, oldest first, decoded to text."""
    return [
        {key.decode(): value.decode() for key, value in fields.items()}
        for _, fields in await client.xrange(DEFAULT_STREAM)
    ]


async def test_mixin_runs_the_class_style_service(
    clock: ManualClock, fake_redis: Any
) -> None:
    """The class-style code publishes one entry a second, then STOPPED."""
    service = ExitBrainService(fake_redis, clock)
    service.active_positions = {"BTC": 1.0}
    running = asyncio.ensure_future(service.run())

    await clock.advance(3.0)
    service.running = False
    await clock.advance(1.0)
    await running

    entries = await read_entries(fake_redis)
    assert [e["status"] for e in entries] == ["OK"] * 5 + ["STOPPED"]
    assert entries[-2]["cycles"] == "4"
    assert entries[-2]["active_positions_count"] == "1"
    assert float(entries[-2]["last_decision_ts"]) > 0
    assert service.heartbeat is not None
    assert service.heartbeat.state is HeartbeatState.STOPPED


async def test_mixin_publishes_the_same_fields_as_attach_heartbeat(
    clock: ManualClock, fake_redis: Any
) -> None:
    """An entry from the mixin has exactly the fields attach_heartbeat writes."""
    service = ExitBrainService(fake_redis, clock)
    service.start_heartbeat()
    await clock.settle()
    await service.stop_heartbeat()
    other = fakeredis.aioredis.FakeRedis()

    class Plain:
        def __init__(self) -> None:
            self.active_positions: dict[str, float] = {}

    async with attach_heartbeat(Plain(), other, clock=clock):
        await clock.settle()

    [mixin_entry, _] = await read_entries(fake_redis)
    [plain_entry, _] = await read_entries(other)
    await other.aclose()
    assert set(mixin_entry) == set(plain_entry)


def test_mixin_init_heartbeat_works_outside_a_loop() -> None:
    """init_heartbeat may run in __init__, before any event loop exists."""
    service = ExitBrainService(fakeredis.aioredis.FakeRedis(), ManualClock())

    assert service.heartbeat is not None
    assert service.heartbeat.state is HeartbeatState.CREATED


def test_mixin_init_heartbeat_checks_options_at_once() -> None:
    """A bad interval fails in init_heartbeat, not later in the background."""

    class Service(HeartbeatMixin):
        def __init__(self) -> None:
            HeartbeatMixin.__init__(self)
            self.active_positions: dict[str, float] = {}
            self.init_heartbeat(fakeredis.aioredis.FakeRedis(), interval=0)

    with pytest.raises(ConfigError, match="interval_s must be a positive number"):
        Service()


def test_mixin_start_heartbeat_needs_a_running_loop() -> None:
    """start_heartbeat outside a loop says to call it from async code."""
    service = ExitBrainService(fakeredis.aioredis.FakeRedis(), ManualClock())

    with pytest.raises(AttachError, match="needs a running event loop"):
        service.start_heartbeat()


async def test_mixin_start_heartbeat_before_init_is_refused() -> None:
    """start_heartbeat without init_heartbeat tells what to call first."""

    class Forgetful(HeartbeatMixin):
        pass

    with pytest.raises(AttachError, match=r"call init_heartbeat first"):
        Forgetful().start_heartbeat()


async def test_mixin_stop_heartbeat_is_safe_to_repeat(
    clock: ManualClock, fake_redis: Any
) -> None:
    """Stopping twice, or before starting, does no harm."""
    service = ExitBrainService(fake_redis, clock)
    await service.stop_heartbeat()

    service.start_heartbeat()
    await clock.settle()
    await service.stop_heartbeat()
    await service.stop_heartbeat()

    statuses = [e["status"] for e in await read_entries(fake_redis)]
    assert statuses == ["OK", "STOPPED"]


async def test_mixin_service_can_run_again_after_a_stop(
    clock: ManualClock, fake_redis: Any
) -> None:
    """A stopped service started again gets a new, running heartbeat."""
    service = ExitBrainService(fake_redis, clock)
    first = service.start_heartbeat()
    await service.stop_heartbeat()

    second = service.start_heartbeat()

    assert second is not first
    assert second.state is HeartbeatState.RUNNING
    await service.stop_heartbeat()


async def test_mixin_set_cycle_time_feeds_the_cycle_rule(
    clock: ManualClock, fake_redis: Any
) -> None:
    """A slow cycle reported with set_cycle_time degrades the next beat."""
    service = ExitBrainService(fake_redis, clock)
    heartbeat = service.start_heartbeat()
    await clock.settle()

    service.set_cycle_time(612)
    await clock.advance(1.0)

    assert heartbeat.last_status is Status.DEGRADED
    assert heartbeat.last_reason == "cycle_ms=612>500"
    await service.stop_heartbeat()


async def test_mixin_set_cycle_time_clamps_negative_durations(
    clock: ManualClock, fake_redis: Any
) -> None:
    """A negative cycle time, from a clock stepped back, is published as 0."""
    service = ExitBrainService(fake_redis, clock)
    service.start_heartbeat()
    await clock.settle()

    service.set_cycle_time(-40)
    await clock.advance(1.0)
    await service.stop_heartbeat()

    entry = (await read_entries(fake_redis))[1]
    assert entry["loop_cycle_ms"] == "0.000"
    assert entry["cycles"] == "1"


async def test_mixin_stall_rule_applies_before_the_first_report(
    clock: ManualClock, fake_redis: Any
) -> None:
    """A class-style service that never reports a cycle degrades as stalled."""
    service = ExitBrainService(fake_redis, clock)
    heartbeat = service.start_heartbeat()

    await clock.advance(11.0)

    assert heartbeat.last_reason == "no_cycle_s=11.0>10"
    await service.stop_heartbeat()
