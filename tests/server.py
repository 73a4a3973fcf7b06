"""A real redis-server process for integration and fault tests.

Built on pytest-redis's executor, which starts the server and waits until it
accepts connections. Each `RedisServer` gets its own free port and directory,
so tests never touch the machine's shared Redis on 6379 and may stop, kill,
freeze and restart their own server at will.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import port_for
import redis.asyncio
from pytest_redis.executor import RedisExecutor


def redis_server_binary() -> str | None:
    """Path of the redis-server binary, or ``None`` when it is not installed."""
    return shutil.which("redis-server")


class RedisServer:
    """One redis-server process that a test controls.

    Args:
        datadir: A directory of the test's own for the server's files.
        extra_args: More ``--option value`` words for redis-server.
        password: Sets ``requirepass``.
        port: A fixed port; a free one is picked when ``None``.
    """

    def __init__(
        self,
        datadir: Path,
        extra_args: list[str] | None = None,
        password: str | None = None,
        port: int | None = None,
    ) -> None:
        binary = redis_server_binary()
        assert binary is not None, "redis-server is not installed"
        self.host = "127.0.0.1"
        self.port = port if port is not None else port_for.select_random()
        self.password = password
        self.datadir = datadir
        self._executor = RedisExecutor(
            binary,
            databases=4,
            redis_timeout=30,
            loglevel="warning",
            host=self.host,
            port=self.port,
            password=password,
            startup_timeout=20,
            datadir=datadir,
        )
        # No persistence at all: a restarted server comes back empty, like
        # the machine's own Redis, and nothing is written to disk.
        self._executor.command_parts.extend(["--save", "", *(extra_args or [])])
        self._frozen = False

    @property
    def url(self) -> str:
        """A ``redis://`` URL for this server, with the password if any."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def pid(self) -> int:
        """Process id of the running server."""
        process = self._executor.process
        assert process is not None, "the server is not running"
        return process.pid

    def start(self) -> RedisServer:
        """Start the server (again) and wait until it accepts connections."""
        self._executor.start()
        return self

    def stop(self) -> None:
        """Stop the server with SIGTERM and wait for it to exit."""
        self.thaw()
        if self._executor.running():
            self._executor.stop()

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would."""
        self.thaw()
        if self._executor.running():
            self._executor.kill(sig=signal.SIGKILL)

    def freeze(self) -> None:
        """Stop the process with SIGSTOP: connections stay open, nothing replies."""
        os.kill(self.pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """Resume a frozen server with SIGCONT."""
        if self._frozen:
            os.kill(self.pid, signal.SIGCONT)
            self._frozen = False

    def client(self, **kwargs: Any) -> redis.asyncio.Redis:
        """A new asyncio client of this server; the caller closes it."""
        kwargs.setdefault("socket_timeout", 5)
        return redis.asyncio.Redis(
            host=self.host, port=self.port, password=self.password, **kwargs
        )
