"""The watchdog against a real redis-server: what fakeredis cannot show.

Real XREAD errors (WRONGTYPE fails the whole command), SCAN with a type
filter, a server that dies and comes back, and passes over thousands of
streams split across several XREAD commands.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exit_heartbeat import (
    HeartbeatEntry,
    Status,
    Transition,
    Verdict,
    Watchdog,
    attach_heartbeat,
    encode_entry,
)
from tests.server import RedisServer

pytestmark = pytest.mark.redis_server


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Any]:
    """A client of the test's own server."""
    connection = redis_server.client(socket_timeout=2, socket_connect_timeout=1)
    yield connection
    await connection.aclose()


def fields() -> dict[str, str]:
    """Fields of one fresh OK entry."""
    return encode_entry(HeartbeatEntry(timestamp=time.time(), status=Status.OK))


class Service:
    """The least a publisher needs."""

    def __init__(self, client: Any) -> None:
        self.redis = client
        self.active_positions: dict[str, int] = {}


async def test_watchdog_survives_a_stream_replaced_by_a_string(client: Any) -> None:
    """XREAD fails for a whole chunk on WRONGTYPE; only that key is MALFORMED."""
    good, bad = f"t:{uuid.uuid4().hex}", f"t:{uuid.uuid4().hex}"
    await client.xadd(good, fields())
    await client.xadd(bad, fields())
    dog = Watchdog(client, streams=[good, bad])
    await dog.check()
    await client.delete(bad)
    await client.set(bad, "not a stream")
    await client.xadd(good, fields())

    reports = await dog.check()

    verdicts = {r.stream: r.verdict for r in reports if r.instance == ""}
    assert verdicts[bad] is Verdict.MALFORMED
    assert [r.verdict for r in reports if r.stream == good] == [Verdict.OK]


async def test_watchdog_pass_over_2500_streams_is_one_round_trip(client: Any) -> None:
    """2,500 streams split across XREAD chunks are all judged in one pipeline."""
    streams = [f"many:{n}.heartbeat" for n in range(2500)]
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xadd(stream, fields())
    await pipe.execute()
    dog = Watchdog(client, pattern="many:*.heartbeat", timeout_s=10)
    before = {r.stream: r.entry_id for r in await dog.check()}
    pipe = client.pipeline(transaction=False)
    for stream in streams[::10]:
        pipe.xadd(stream, fields())
    await pipe.execute()

    reports = await dog.check()

    assert len(reports) == 2500
    assert {r.verdict for r in reports} == {Verdict.OK}
    changed = {r.stream for r in reports if r.entry_id != before[r.stream]}
    assert changed == set(streams[::10])


async def test_watchdog_pattern_skips_keys_that_are_not_streams(client: Any) -> None:
    """SCAN finds only streams: a string matching the pattern is ignored."""
    prefix = uuid.uuid4().hex
    await client.xadd(f"{prefix}:a.heartbeat", fields())
    await client.set(f"{prefix}:b.heartbeat", "x")

    reports = await Watchdog(client, pattern=f"{prefix}:*.heartbeat").check()

    assert [(r.stream, r.verdict) for r in reports] == [
        (f"{prefix}:a.heartbeat", Verdict.OK)
    ]


async def test_watchdog_rides_out_a_server_restart(
    redis_server: RedisServer, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A killed server gives one UNREACHABLE alert, then a logged recovery."""
    caplog.set_level(logging.INFO)
    stream = f"t:{uuid.uuid4().hex}"
    publisher_client = redis_server.client(socket_timeout=1, socket_connect_timeout=1)
    heartbeat = attach_heartbeat(
        Service(publisher_client), stream=stream, interval_s=0.1
    )
    seen: list[Transition] = []
    dog = Watchdog(
        client, streams=[stream], interval_s=0.1, timeout_s=0.5, backoff_max_s=0.4
    )
    dog.add_listener(seen.append)
    running = asyncio.ensure_future(dog.run())

    async def wait_until(condition: Any) -> None:
        deadline = time.monotonic() + 20
        while not condition():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    try:
        await wait_until(lambda: dog.last_reports)
        redis_server.kill()
        await wait_until(lambda: any(t.verdict is Verdict.UNREACHABLE for t in seen))
        redis_server.start()
        await wait_until(lambda: any(t.previous is Verdict.UNREACHABLE for t in seen))
    finally:
        await dog.stop()
        await running
        await heartbeat.stop()
        await publisher_client.aclose()

    unreachable = [t for t in seen if t.stream == ""]
    assert [(t.previous, t.verdict) for t in unreachable] == [
        (Verdict.OK, Verdict.UNREACHABLE),
        (Verdict.UNREACHABLE, Verdict.OK),
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Alert: status=UNREACHABLE" in m for m in messages) == 1
    assert sum("Recovered: status=OK was=UNREACHABLE" in m for m in messages) == 1


@pytest.mark.parametrize(
    "options",
    [
        {"protocol": 2},
        {"protocol": 3},
        {"protocol": 2, "decode_responses": True},
        {"protocol": 3, "decode_responses": True},
    ],
)
async def test_watchdog_reads_with_either_protocol_and_decoding(
    redis_server: RedisServer, options: dict[str, Any]
) -> None:
    """RESP2 or RESP3, bytes or str replies: the newest entry is read the same."""
    client = redis_server.client(**options)
    stream = f"t:{uuid.uuid4().hex}"
    try:
        await client.xadd(stream, fields())
        dog = Watchdog(client, streams=[stream])
        await dog.check()
        newest = await client.xadd(stream, fields())

        [report] = await dog.check()
    finally:
        await client.aclose()

    assert report.verdict is Verdict.OK
    assert report.entry_id == (newest if isinstance(newest, str) else newest.decode())
