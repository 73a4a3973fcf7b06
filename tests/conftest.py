"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from exit_heartbeat.testing import ManualClock
from tests.server import RedisServer, redis_server_binary


def _require_redis_server() -> None:
    if redis_server_binary() is not None:
        return
    message = (
        "redis-server not found on PATH: integration and fault tests need it "
        "(on Debian: apt-get install redis-server)"
    )
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run them, so this is a failure")
    pytest.skip(message)


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test advances it."""
    return ManualClock()


@pytest.fixture
async def fake_redis() -> AsyncIterator[fakeredis.aioredis.FakeRedis]:
    """An in-memory asyncio Redis client, new and empty for each test."""
    client = fakeredis.aioredis.FakeRedis()
    yield client
    await client.aclose()


@pytest.fixture
def redis_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RedisServer]]:
    """Start redis-server processes of the test's own; all stopped at teardown.

    Call it as ``redis_server_factory(extra_args=[...], password=...)``.
    """
    _require_redis_server()
    servers: list[RedisServer] = []

    def start(**kwargs: Any) -> RedisServer:
        datadir = Path(tmp_path_factory.mktemp("redis"))
        server = RedisServer(datadir, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture
def redis_server(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    """A running redis-server of this test's own, on a free port."""
    return redis_server_factory()


@pytest.fixture(scope="session")
def shared_redis_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisServer]:
    """One redis-server for tests that only read and write keys of their own."""
    _require_redis_server()
    server = RedisServer(Path(tmp_path_factory.mktemp("redis-shared"))).start()
    yield server
    server.kill()
