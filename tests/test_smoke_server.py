"""Checks of the test suite's own redis-server fixture."""

from tests.server import RedisServer


async def test_redis_server_restart_keeps_port(redis_server: RedisServer) -> None:
    """A killed server restarts on the same port, empty."""
    client = redis_server.client()
    await client.set("k", "v")
    redis_server.kill()
    redis_server.start()
    assert await client.get("k") is None
    await client.aclose()
