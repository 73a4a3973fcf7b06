"""Redis and publisher faults seen from the watchdog, on a real redis-server.

The watchdog must keep watching through its own faults and tell the truth
about each instance: the server going away is one UNREACHABLE, a stream that
vanishes or turns into another kind of key is reported as such, a publisher
killed outright goes STALE in time, and one that stops cleanly is STOPPED and
never an alert.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from exit_heartbeat import (
    HeartbeatEntry,
    InstanceReport,
    Status,
    Transition,
    Verdict,
    Watchdog,
    attach_heartbeat,
    encode_entry,
)
from tests.faults.harness import STREAM, TradingService, wait_until
from tests.server import RedisServer

pytestmark = pytest.mark.redis_server

REPO = Path(__file__).resolve().parents[2]
LOGGER = "exit_heartbeat"
CHECK_S = 0.2


class Watching:
    """A running watchdog with everything it said kept for the test."""

    def __init__(self, dog: Watchdog) -> None:
        self.dog = dog
        self.transitions: list[Transition] = []
        self.checks: list[tuple[float, list[InstanceReport]]] = []
        dog.add_listener(self.transitions.append)
        dog.add_report_listener(self._on_reports)
        self.task = asyncio.get_running_loop().create_task(dog.run())

    def _on_reports(self, reports: Sequence[InstanceReport]) -> None:
        self.checks.append((asyncio.get_running_loop().time(), list(reports)))

    def verdicts(self) -> set[Verdict]:
        """The verdicts of the latest check."""
        return {report.verdict for report in self.dog.last_reports}

    async def close(self) -> None:
        """Stop the watchdog; its run must end without an error."""
        await self.dog.stop()
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def watch() -> AsyncIterator[Callable[..., Watching]]:
    """Start watchdogs on a client with the test's options; stopped at teardown."""
    running: list[Watching] = []

    def start(server: RedisServer, **options: Any) -> Watching:
        client = server.client(socket_timeout=1)
        options = {"interval_s": CHECK_S, "timeout_s": 0.5, **options}
        watching = Watching(Watchdog(client, streams=[STREAM], **options))
        running.append(watching)
        return watching

    yield start
    for watching in running:
        await watching.close()


def _records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def _kill(server: RedisServer) -> None:
    server.kill()


def _restart(server: RedisServer) -> None:
    server.start()


@pytest.mark.parametrize(
    ("break_server", "mend_server"),
    [(_kill, _restart), (RedisServer.freeze, RedisServer.thaw)],
    ids=["sigkill", "sigstop"],
)
async def test_watchdog_server_killed_or_frozen_is_unreachable_once(
    redis_server: RedisServer,
    watch: Callable[..., Watching],
    caplog: pytest.LogCaptureFixture,
    break_server: Callable[[RedisServer], None],
    mend_server: Callable[[RedisServer], None],
) -> None:
    """A killed or frozen server: one UNREACHABLE, then OK, same watchdog."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    publisher = redis_server.client()
    heartbeat = attach_heartbeat(TradingService(publisher), interval_s=CHECK_S)
    watching = watch(redis_server, stale_after_s=3.0, backoff_max_s=0.8)
    await wait_until(lambda: watching.verdicts() == {Verdict.OK}, 10, "OK")

    await asyncio.to_thread(break_server, redis_server)
    await wait_until(lambda: not watching.dog.reachable, 5, "UNREACHABLE")
    await asyncio.sleep(1.5)
    await asyncio.to_thread(mend_server, redis_server)
    await wait_until(lambda: watching.dog.reachable, 5, "Redis again")
    await wait_until(lambda: watching.verdicts() == {Verdict.OK}, 5, "OK again")

    assert not watching.task.done()
    changes = [(t.stream, t.verdict) for t in watching.transitions]
    assert changes == [("", Verdict.UNREACHABLE), ("", Verdict.OK)]
    assert len(_records(caplog, "Alert: status=UNREACHABLE")) == 1
    assert len(_records(caplog, "Recovered: status=OK was=UNREACHABLE")) == 1
    await heartbeat.stop()
    await publisher.aclose()


def _entry(instance: str = "host:1") -> dict[str, str]:
    entry = HeartbeatEntry(
        timestamp=time.time(), status=Status.OK, instance=instance, interval_s=0.2
    )
    return encode_entry(entry)


async def test_watchdog_stream_deleted_recreated_and_replaced_by_other_type(
    redis_server: RedisServer,
) -> None:
    """Deleted: STALE in time; recreated: OK; another type: MALFORMED; no raise."""
    admin = redis_server.client()
    dog = Watchdog(
        redis_server.client(socket_timeout=1),
        streams=[STREAM],
        stale_after_s=0.6,
        alert_after=1,
        recover_after=1,
    )

    async def verdicts() -> set[tuple[str, Verdict]]:
        return {(r.instance, r.verdict) for r in await dog.check()}

    await admin.xadd(STREAM, _entry())
    assert await verdicts() == {("host:1", Verdict.OK)}

    await admin.delete(STREAM)
    await asyncio.sleep(1.0)
    assert await verdicts() == {("host:1", Verdict.STALE)}

    await admin.xadd(STREAM, _entry())
    assert await verdicts() == {("host:1", Verdict.OK)}

    await admin.delete(STREAM)
    await admin.set(STREAM, "a plain string")
    reports = await dog.check()
    malformed = [r for r in reports if r.verdict is Verdict.MALFORMED]
    assert [r.reason for r in malformed] == [
        "the key holds something other than a stream"
    ]

    await admin.delete(STREAM)
    await admin.xadd(STREAM, _entry())
    assert await verdicts() == {("host:1", Verdict.OK)}

    fresh = Watchdog(redis_server.client(socket_timeout=1), streams=[STREAM])
    await admin.delete(STREAM)
    [report] = await fresh.check()
    assert report.verdict is Verdict.MISSING
    await admin.aclose()


@pytest.fixture
async def publisher_process(
    redis_server: RedisServer,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A publisher in a process of its own, beating every CHECK_S; killed at end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.faults.publisher_process",
        redis_server.url,
        STREAM,
        str(CHECK_S),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line.strip() == b"ready"
    yield process
    if process.returncode is None:
        process.kill()
    await process.wait()


async def test_watchdog_publisher_killed_goes_stale_in_time(
    redis_server: RedisServer,
    publisher_process: asyncio.subprocess.Process,
    watch: Callable[..., Watching],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGKILL, no STOPPED entry: STALE within stale_after_s plus one check."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    stale_after_s = 1.0
    watching = watch(redis_server, stale_after_s=stale_after_s, alert_after=1)
    await wait_until(lambda: watching.verdicts() == {Verdict.OK}, 10, "OK")

    loop = asyncio.get_running_loop()
    publisher_process.send_signal(signal.SIGKILL)
    await publisher_process.wait()
    killed_at = loop.time()
    await wait_until(lambda: watching.verdicts() == {Verdict.STALE}, 10, "STALE")

    first_stale = min(
        at
        for at, reports in watching.checks
        if any(r.verdict is Verdict.STALE for r in reports)
    )
    # The last beat came at most one publish interval before the kill, and
    # a check may just miss the moment; a busy machine adds some margin.
    assert stale_after_s - CHECK_S - 0.05 <= first_stale - killed_at
    assert first_stale - killed_at <= stale_after_s + CHECK_S + 1.0
    alerts = [t for t in watching.transitions if t.is_alert]
    assert [t.verdict for t in alerts] == [Verdict.STALE]
    assert len(_records(caplog, "Alert: status=STALE")) == 1


async def test_watchdog_clean_stop_is_stopped_and_never_an_alert(
    redis_server: RedisServer,
    publisher_process: asyncio.subprocess.Process,
    watch: Callable[..., Watching],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGTERM, a clean stop: STOPPED, still STOPPED long after, no alert."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    stale_after_s = 1.0
    watching = watch(redis_server, stale_after_s=stale_after_s, alert_after=1)
    await wait_until(lambda: watching.verdicts() == {Verdict.OK}, 10, "OK")

    publisher_process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(publisher_process.wait(), 10) == 0
    await wait_until(lambda: watching.verdicts() == {Verdict.STOPPED}, 5, "STOPPED")
    await asyncio.sleep(2 * stale_after_s)

    assert watching.verdicts() == {Verdict.STOPPED}
    assert not [t for t in watching.transitions if t.is_alert]
    watchdog_records = [r for r in caplog.records if r.name.endswith("watchdog")]
    assert max(r.levelno for r in watchdog_records) == logging.INFO
