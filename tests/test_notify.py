"""Tests of the systemd notifier, on a real AF_UNIX datagram socket."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exit_heartbeat import HeartbeatEntry, Status, Watchdog, encode_entry
from exit_heartbeat.notify import SystemdNotifier
from exit_heartbeat.testing import ManualClock


@pytest.fixture
def listener() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket playing systemd, at a path short enough for AF_UNIX."""
    directory = Path(tempfile.mkdtemp(prefix="eh-"))
    path = str(directory / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield path, sock
    sock.close()
    os.unlink(path)
    directory.rmdir()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket, decoded."""
    messages: list[str] = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2.0)
    return messages


def test_notifier_sends_ready_with_status(
    listener: tuple[str, socket.socket],
) -> None:
    """ready() sends one datagram with READY=1 and the STATUS line."""
    path, sock = listener
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path})

    assert notifier.ready("1 watched: 1 OK")

    assert sock.recv(4096) == b"READY=1\nSTATUS=1 watched: 1 OK"
    notifier.close()


def test_notifier_pings_only_when_systemd_expects_it(
    listener: tuple[str, socket.socket],
) -> None:
    """WATCHDOG=1 is sent when WATCHDOG_USEC is set, and not otherwise."""
    path, sock = listener
    silent = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path})
    pinging = SystemdNotifier.from_environ(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}
    )

    assert not silent.watchdog()
    assert pinging.watchdog()

    assert received(sock) == ["WATCHDOG=1"]
    assert pinging.watchdog_interval_s == 30.0
    silent.close()
    pinging.close()


def test_notifier_ignores_watchdog_meant_for_another_process(
    listener: tuple[str, socket.socket],
) -> None:
    """WATCHDOG_PID naming another process turns the pings off."""
    path, _ = listener
    notifier = SystemdNotifier.from_environ(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    )

    assert notifier.watchdog_interval_s is None
    assert not notifier.watchdog()


def test_notifier_status_is_one_line(listener: tuple[str, socket.socket]) -> None:
    """A multi-line status is folded into one STATUS= line."""
    path, sock = listener
    notifier = SystemdNotifier(path)

    notifier.status("2 watched:\n1 OK,\t1 STALE")

    assert sock.recv(4096) == b"STATUS=2 watched: 1 OK, 1 STALE"
    notifier.close()


def test_notifier_reaches_abstract_namespace_socket() -> None:
    """An '@name' NOTIFY_SOCKET is reached in the abstract namespace."""
    name = f"exit-heartbeat-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2.0)
        notifier = SystemdNotifier(f"@{name}")

        assert notifier.notify("READY=1")

        assert sock.recv(4096) == b"READY=1"
        notifier.close()


def test_notifier_without_socket_does_nothing() -> None:
    """With no NOTIFY_SOCKET, every call is a no-op returning False."""
    notifier = SystemdNotifier.from_environ({})

    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.status("x")


def test_notifier_failure_is_logged_once_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A socket nobody listens on gives False and a single warning."""
    notifier = SystemdNotifier(str(tmp_path / "nobody"))

    results = [notifier.notify("WATCHDOG=1") for _ in range(5)]

    assert results == [False] * 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    notifier.close()


async def test_watchdog_run_notifies_systemd_socket(
    listener: tuple[str, socket.socket], fake_redis: Any, clock: ManualClock
) -> None:
    """A running watchdog sends READY=1, STATUS= and WATCHDOG=1 to the socket."""
    path, sock = listener
    fields = encode_entry(HeartbeatEntry(timestamp=clock.time(), status=Status.OK))
    await fake_redis.xadd("svc.heartbeat", fields, id=f"{int(clock.time() * 1000)}-*")
    notifier = SystemdNotifier.from_environ(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}
    )
    dog = Watchdog(
        fake_redis,
        streams=["svc.heartbeat"],
        notifier=notifier,
        clock=clock,
        server_clock=clock.time,
    )

    task = asyncio.ensure_future(dog.run())
    await clock.advance(1.5)
    await dog.stop()
    await task

    assert received(sock) == [
        "READY=1\nSTATUS=1 watched: 1 OK",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "STOPPING=1",
    ]
