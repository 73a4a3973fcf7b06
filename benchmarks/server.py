"""A redis-server process of the benchmarks' own, on a free port.

The benchmarks never touch a Redis server that something else uses: each one
starts a server with no persistence, uses it, and stops it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis

__all__ = ["RedisProcess", "redis_server"]

_STARTUP_TIMEOUT_S = 20.0


class RedisProcess:
    """A running redis-server; see `redis_server`."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        """Wrap a started process listening on ``port``."""
        self.process = process
        self.host = "127.0.0.1"
        self.port = port

    @property
    def url(self) -> str:
        """A ``redis://`` URL of the server."""
        return f"redis://{self.host}:{self.port}/0"

    def version(self) -> str:
        """The server's version, as it reports it."""
        client = redis.Redis(host=self.host, port=self.port)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_ready(process: subprocess.Popen[bytes], port: int) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {process.returncode} "
                    f"before accepting connections on port {port}"
                )
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    finally:
        client.close()


@contextlib.contextmanager
def redis_server() -> Iterator[RedisProcess]:
    """Start a redis-server on a free port; stop it on exit.

    Yields:
        The running server.

    Raises:
        RuntimeError: redis-server is not installed or did not start.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server not found on PATH: the benchmarks need one "
            "(on Debian: apt-get install redis-server)"
        )
    with tempfile.TemporaryDirectory(prefix="exit-heartbeat-bench-") as datadir:
        port = _free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                datadir,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until_ready(process, port)
            yield RedisProcess(process, port)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
