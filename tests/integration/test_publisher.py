"""The publisher against a real redis-server, on real time, on purpose.

Each test starts a server of its own (the ``redis_server`` fixture) and runs
for a few seconds at most. Timings are never asserted precisely: counts are
checked with generous bounds, so a slow machine does not make them fail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from exit_heartbeat import (
    DEFAULT_STREAM,
    HeartbeatMixin,
    Status,
    attach_heartbeat,
    cycle_stats,
    decision,
    decode_entry,
    timed_cycle,
)
from tests.fields import SPEC_FIELDS
from tests.server import RedisServer

pytestmark = pytest.mark.redis_server


# The quick start of the specification, word for word.
class ExitBrain:
    def __init__(self, redis):
        self.redis = redis  # a redis.asyncio client
        self.active_positions = {}

    @timed_cycle
    @decision
    async def process_cycle(self): ...  # the service's own decision logic

    async def start(self):
        self.heartbeat = attach_heartbeat(self)

    async def stop(self):
        await self.heartbeat.stop()


# The class-style service of the specification, word for word, with the one
# method it leaves to the service filled in.
class ExitBrainService(HeartbeatMixin):
    def __init__(self, redis_client, config=None):
        HeartbeatMixin.__init__(self)
        self.redis = redis_client
        self.active_positions = {}
        self.last_decision_ts = 0.0
        self.running = True
        self.init_heartbeat(redis_client, interval=1.0)

    async def _process_positions(self) -> None:
        await asyncio.sleep(0.01)

    async def run(self):
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


async def latest_fields(client: Any, stream: str = DEFAULT_STREAM) -> dict[str, str]:
    """The fields of the newest entry, as ``XREVRANGE ... COUNT 1`` shows them."""
    [(_, fields)] = await client.xrevrange(stream, count=1)
    return {key.decode(): value.decode() for key, value in fields.items()}


def service_cycles(service: object) -> int:
    """Cycles the decorators recorded for ``service`` so far."""
    return cycle_stats(service).cycles


async def run_cycles(service: Any, pause_s: float, done: asyncio.Event) -> int:
    """Call the service's cycle every ``pause_s`` until ``done``; return the count."""
    count = 0
    while not done.is_set():
        await service.process_cycle()
        count += 1
        await asyncio.sleep(pause_s)
    return count


async def test_heartbeat_quick_start_publishes_to_a_real_server(
    redis_server: RedisServer,
) -> None:
    """The quick-start service grows the stream by one a second, every field set."""
    client = redis_server.client()
    brain = ExitBrain(client)
    brain.active_positions = {"BTC": 1.0}
    done = asyncio.Event()
    cycles = asyncio.ensure_future(run_cycles(brain, 0.1, done))
    await brain.start()

    await asyncio.sleep(0.5)
    first_len = await client.xlen(DEFAULT_STREAM)
    await asyncio.sleep(2.0)
    second_len = await client.xlen(DEFAULT_STREAM)
    fields = await latest_fields(client)
    done.set()
    await cycles
    await brain.stop()

    assert 1 <= second_len - first_len <= 3
    assert set(fields) >= SPEC_FIELDS
    assert fields["status"] == "OK"
    assert fields["active_positions_count"] == "1"
    assert float(fields["last_decision_ts"]) > 0
    assert int(fields["cycles"]) > 0
    assert (await latest_fields(client))["status"] == "STOPPED"
    await client.aclose()


async def test_heartbeat_stream_grows_one_entry_per_interval(
    redis_server: RedisServer,
) -> None:
    """At 0.1 s, about ten numbered entries a second reach the server."""
    client = redis_server.client()
    service = ExitBrain(client)
    heartbeat = attach_heartbeat(service, interval_s=0.1)

    await asyncio.sleep(1.05)
    await heartbeat.stop()

    entries = [
        decode_entry(fields) for _, fields in await client.xrange(DEFAULT_STREAM)
    ]
    running = entries[:-1]
    assert 6 <= len(running) <= 14
    assert [e.seq for e in running] == list(range(len(running)))
    assert entries[-1].status is Status.STOPPED
    assert all(e.interval_s == 0.1 for e in entries)
    await client.aclose()


async def test_mixin_service_publishes_to_a_real_server(
    redis_server: RedisServer,
) -> None:
    """The class-style service publishes every field, then STOPPED."""
    client = redis_server.client()
    service = ExitBrainService(client)
    running = asyncio.ensure_future(service.run())

    await asyncio.sleep(1.6)
    fields = await latest_fields(client)
    service.running = False
    await running

    assert set(fields) >= SPEC_FIELDS
    assert fields["status"] == "OK"
    assert int(fields["cycles"]) >= 1
    assert float(fields["last_decision_ts"]) > 0
    assert 2 <= await client.xlen(DEFAULT_STREAM) <= 4
    assert (await latest_fields(client))["status"] == "STOPPED"
    await client.aclose()


async def test_heartbeat_redis_outage_never_stops_the_service(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed and restarted: cycles go on, beats resume, two log lines."""
    caplog.set_level(logging.INFO, logger="exit_heartbeat")
    client = redis_server.client(socket_timeout=0.5, socket_connect_timeout=0.5)
    service = ExitBrain(client)
    heartbeat = attach_heartbeat(service, interval_s=0.1)
    done = asyncio.Event()
    cycles = asyncio.ensure_future(run_cycles(service, 0.02, done))
    await asyncio.sleep(0.5)
    caplog.clear()

    # The server is driven from a thread: starting it waits until it accepts
    # connections, which would otherwise block the loop under test.
    await asyncio.to_thread(redis_server.kill)
    before_outage = service_cycles(service)
    await asyncio.sleep(1.0)
    during_outage = service_cycles(service) - before_outage
    await asyncio.to_thread(redis_server.start)
    await asyncio.sleep(1.5)
    outage_records = list(caplog.records)

    done.set()
    await cycles
    published_after = await client.xlen(DEFAULT_STREAM)
    await heartbeat.stop()
    await client.aclose()

    assert during_outage >= 10
    assert heartbeat.failed > 0
    assert published_after >= 3
    ours = [r for r in outage_records if r.name.startswith("exit_heartbeat")]
    assert [r.levelno for r in ours] == [logging.WARNING, logging.INFO]
    assert "publish failed" in ours[0].getMessage()
    assert "recovered" in ours[1].getMessage()
    assert "missed_beats=" in ours[1].getMessage()


async def test_heartbeat_publishes_over_a_unix_socket(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """A client on a unix socket publishes like any other."""
    socket_path = tmp_path / "redis.sock"
    redis_server_factory(
        extra_args=["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
    )
    client = redis.asyncio.Redis(unix_socket_path=str(socket_path))
    heartbeat = attach_heartbeat(ExitBrain(client), interval_s=0.1)

    await asyncio.sleep(0.35)
    await heartbeat.stop()

    assert heartbeat.published >= 3
    assert await client.xlen(DEFAULT_STREAM) == heartbeat.published
    await client.aclose()
