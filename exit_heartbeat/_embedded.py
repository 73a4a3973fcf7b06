"""A Redis-protocol server inside the process, for the demo and the examples.

It lets someone try exit_heartbeat on a machine with no Redis at all. The
server is fakeredis's in-memory Redis served over TCP on a free local port, in
threads of its own: a watchdog in another thread, or ``exit-heartbeat watch``
in another terminal, can read it even while the demo blocks its event loop on
purpose. It keeps nothing on disk and is for trying things out only.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from exit_heartbeat.errors import HeartbeatError

__all__ = ["EmbeddedRedis", "EmbeddedRedisError"]

# How often the accepting thread checks whether it was asked to shut down.
_SHUTDOWN_POLL_S = 0.05

_INSTALL_HINT = (
    "the embedded Redis server needs fakeredis: install it with "
    'pip install "exit_heartbeat[demo]", or pass --redis-url to use a '
    "Redis server you run"
)


class EmbeddedRedisError(HeartbeatError):
    """The embedded server cannot start; the message says what to do."""


class EmbeddedRedis:
    """An in-memory Redis server on ``127.0.0.1``, served from this process.

    Use it as a context manager, or call `start` and `stop`::

        with EmbeddedRedis() as server:
            client = redis.asyncio.from_url(server.url)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server; nothing listens before `start`.

        Args:
            host: The address to listen on; local only by default.
            port: The port to listen on; 0 picks a free one.
        """
        self._address = (host, port)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """A ``redis://`` URL that reaches the running server.

        Raises:
            EmbeddedRedisError: The server is not running.
        """
        if self._server is None:
            raise EmbeddedRedisError("the embedded Redis server is not running")
        host, port = self._server.server_address[:2]
        return f"redis://{host}:{port}/0"

    def start(self) -> EmbeddedRedis:
        """Start listening and serving in background threads.

        Returns:
            This server, so that ``EmbeddedRedis().start().url`` reads well.

        Raises:
            EmbeddedRedisError: fakeredis is not installed, or the address
                cannot be bound.
        """
        if self._server is not None:
            return self
        try:
            from fakeredis import TcpFakeServer
        except ImportError:
            raise EmbeddedRedisError(_INSTALL_HINT) from None

        try:
            server = TcpFakeServer(self._address, server_version=(7, 4))
        except OSError as exc:
            host, port = self._address
            raise EmbeddedRedisError(
                f"the embedded Redis server cannot listen on {host}:{port}: "
                f"{exc.strerror or exc}"
            ) from None

        # Each client connection gets a thread, so a client that blocks (the
        # watchdog's reads while the demo's loop is frozen) holds up no other.
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _SHUTDOWN_POLL_S},
            name="exit_heartbeat:embedded-redis",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
