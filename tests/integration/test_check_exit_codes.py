"""``exit-heartbeat check`` against a real redis-server and a real publisher.

Each test produces one case with the core toolkit's own publisher (or a
publisher process killed with SIGKILL) and asserts the exit code and verdict
that a probe would see.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from exit_heartbeat import Heartbeat, attach_heartbeat, timed_cycle
from exit_heartbeat.cli import main
from tests.server import RedisServer

pytestmark = pytest.mark.redis_server

INTERVAL_S = 0.1
STALE_AFTER_S = "0.6"


class Service:
    """A small service whose cycle can be made slow."""

    def __init__(self, client: Any, cycle_s: float = 0.0) -> None:
        self.redis = client
        self.active_positions = {"BTCUSDT": 1}
        self.cycle_s = cycle_s

    @timed_cycle
    async def process_cycle(self) -> None:
        await asyncio.sleep(self.cycle_s)


@pytest.fixture
def stream() -> str:
    """A stream key of this test's own."""
    return f"it:{uuid.uuid4().hex}.heartbeat"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Any]:
    """A client of the test's own server."""
    connection = redis_server.client()
    yield connection
    await connection.aclose()


async def wait_for_entries(client: Any, stream: str, count: int) -> None:
    """Wait (10 s at most) until the stream holds ``count`` entries."""
    deadline = time.monotonic() + 10
    while await client.xlen(stream) < count:
        assert time.monotonic() < deadline, f"{stream} never got {count} entries"
        await asyncio.sleep(INTERVAL_S / 2)


async def check(
    server: RedisServer, stream: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    """Run ``exit-heartbeat check --json`` in a thread; exit code and JSON."""
    capsys.readouterr()
    code = await asyncio.to_thread(
        main,
        [
            "check",
            "--json",
            "--redis-url",
            server.url,
            "--stream",
            stream,
            "--stale-after",
            STALE_AFTER_S,
        ],
    )
    return code, json.loads(capsys.readouterr().out)


def attach(service: Service, stream: str, **options: Any) -> Heartbeat:
    """Attach the core publisher at the tests' fast interval."""
    return attach_heartbeat(service, stream=stream, interval_s=INTERVAL_S, **options)


async def test_check_healthy_publisher_exits_0(
    redis_server: RedisServer,
    client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A service beating normally: exit 0, verdict OK."""
    service = Service(client)
    await service.process_cycle()
    heartbeat = attach(service, stream)
    try:
        await wait_for_entries(client, stream, 2)
        code, document = await check(redis_server, stream, capsys)
    finally:
        await heartbeat.stop()

    assert code == 0
    assert document["verdict"] == "OK"


async def test_check_slow_cycle_exits_1(
    redis_server: RedisServer,
    client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A cycle slower than max_cycle_ms: exit 1, DEGRADED with the cycle_ms rule."""
    service = Service(client, cycle_s=0.05)
    await service.process_cycle()
    heartbeat = attach(service, stream, max_cycle_ms=20)
    try:
        await wait_for_entries(client, stream, 2)
        code, document = await check(redis_server, stream, capsys)
    finally:
        await heartbeat.stop()

    assert code == 1
    assert document["verdict"] == "DEGRADED"
    assert "cycle_ms=" in document["reports"][0]["reason"]


PUBLISHER = textwrap.dedent(
    """
    import asyncio, sys
    import redis.asyncio
    from exit_heartbeat import attach_heartbeat

    class Service:
        active_positions = {"ETHUSDT": 1}

    async def main():
        service = Service()
        service.redis = redis.asyncio.from_url(sys.argv[1])
        attach_heartbeat(service, stream=sys.argv[2], interval_s=0.1)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_check_killed_publisher_exits_2(
    redis_server: RedisServer,
    client: Any,
    stream: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A publisher process killed with SIGKILL (no STOPPED entry): exit 2, STALE."""
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), redis_server.url, stream, cwd=os.getcwd()
    )
    try:
        await wait_for_entries(client, stream, 3)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    await asyncio.sleep(float(STALE_AFTER_S) + 0.4)

    code, document = await check(redis_server, stream, capsys)

    assert code == 2
    assert document["verdict"] == "STALE"
    assert document["reports"][0]["reason"].startswith("no heartbeat for")


async def test_check_clean_stop_exits_2(
    redis_server: RedisServer,
    client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A heartbeat stopped cleanly: exit 2, STOPPED, however fresh."""
    heartbeat = attach(Service(client), stream)
    await wait_for_entries(client, stream, 2)
    await heartbeat.stop()

    code, document = await check(redis_server, stream, capsys)

    assert code == 2
    assert document["verdict"] == "STOPPED"


async def test_check_no_stream_exits_2(
    redis_server: RedisServer, stream: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stream that does not exist: exit 2, MISSING."""
    code, document = await check(redis_server, stream, capsys)

    assert code == 2
    assert document["verdict"] == "MISSING"
    assert document["reports"][0]["reason"] == "no such key"


async def test_check_garbage_entry_exits_3(
    redis_server: RedisServer,
    client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A newest entry that cannot be read: exit 3, MALFORMED naming the field."""
    heartbeat = attach(Service(client), stream)
    await wait_for_entries(client, stream, 2)
    await heartbeat.stop()
    await client.xadd(stream, {"timestamp": b"\xff\xfe\x00", "status": "OK"})

    code, document = await check(redis_server, stream, capsys)

    assert code == 3
    assert document["verdict"] == "MALFORMED"
    assert "'timestamp'" in document["reports"][0]["reason"]


async def test_check_server_down_exits_3(
    redis_server: RedisServer,
    client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server that is down: exit 3, UNREACHABLE, quickly and without a traceback."""
    heartbeat = attach(Service(client), stream)
    await wait_for_entries(client, stream, 2)
    await heartbeat.stop()
    redis_server.stop()

    code, document = await check(redis_server, stream, capsys)

    assert code == 3
    assert document["verdict"] == "UNREACHABLE"


async def test_check_through_unix_socket(
    redis_server_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A unix:// URL works like a TCP one."""
    socket_path = tmp_path / "redis.sock"
    server = redis_server_factory(
        extra_args=["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
    )
    stream = f"it:{uuid.uuid4().hex}.heartbeat"
    publisher = redis.asyncio.from_url(f"unix://{socket_path}")
    heartbeat = attach(Service(publisher), stream)
    try:
        await wait_for_entries(publisher, stream, 2)
        code = await asyncio.to_thread(
            main, ["check", "--redis-url", f"unix://{socket_path}", "--stream", stream]
        )
    finally:
        await heartbeat.stop()
        await publisher.aclose()
        server.stop()

    assert code == 0
    assert "status=OK" in capsys.readouterr().out
