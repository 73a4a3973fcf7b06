"""Unit tests of the watchdog: judging, hysteresis, logging, alerts, the loop.

Entries are written to fakeredis with stream IDs taken from a manual clock,
and the watchdog reads the same clock in place of the server's TIME, so every
age is exact and no test sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions

from exit_heartbeat import (
    ConfigError,
    HeartbeatEntry,
    InstanceReport,
    Status,
    Transition,
    Verdict,
    Watchdog,
    WatchdogState,
    check_streams,
    encode_entry,
)
from exit_heartbeat.testing import ManualClock

STREAM = "svc:a.heartbeat"
OTHER = "svc:b.heartbeat"
WATCHDOG_LOGGER = "exit_heartbeat.watchdog"


class Publisher:
    """Writes heartbeat entries the way the core publisher would.

    The entry ID comes from the manual clock, as Redis would stamp it; the
    ``timestamp`` field can be put off by ``skew_s`` to mimic a bad clock.
    """

    def __init__(
        self,
        client: Any,
        clock: ManualClock,
        stream: str = STREAM,
        instance: str = "host:1",
        interval_s: float = 1.0,
        service: str = "ExitBrain",
    ) -> None:
        self.client = client
        self.clock = clock
        self.stream = stream
        self.instance = instance
        self.interval_s = interval_s
        self.service = service
        self.seq = 0

    async def beat(
        self, status: Status = Status.OK, reason: str = "", skew_s: float = 0.0
    ) -> str:
        """Publish one entry now."""
        entry = HeartbeatEntry(
            timestamp=self.clock.time() + skew_s,
            status=status,
            reason=reason,
            interval_s=self.interval_s,
            seq=self.seq,
            service=self.service,
            instance=self.instance,
        )
        self.seq += 1
        entry_id = f"{int(self.clock.time() * 1000)}-*"
        reply = await self.client.xadd(self.stream, encode_entry(entry), id=entry_id)
        return reply.decode() if isinstance(reply, bytes) else str(reply)


class CountingRedis:
    """A client that counts pipelines and can be taken down on demand."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.pipelines: list[list[str]] = []

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self.inner.pipeline(transaction=transaction)
        execute = pipe.execute

        async def counted(raise_on_error: bool = True) -> Any:
            self.pipelines.append([args[0] for args, _ in pipe.command_stack])
            if self.down:
                raise redis.exceptions.ConnectionError("Error 111 connecting")
            return await execute(raise_on_error=raise_on_error)

        pipe.execute = counted
        return pipe

    async def scan(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise redis.exceptions.ConnectionError("Error 111 connecting")
        return await self.inner.scan(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FakeNotifier:
    """Records what would be sent to systemd."""

    def __init__(self, watchdog_interval_s: float | None = 30.0) -> None:
        self.sent: list[str] = []
        self.watchdog_interval_s = watchdog_interval_s
        self.statuses: list[str] = []

    def ready(self, status: str | None = None) -> bool:
        self.sent.append("READY=1")
        if status is not None:
            self.statuses.append(status)
        return True

    def watchdog(self) -> bool:
        self.sent.append("WATCHDOG=1")
        return True

    def status(self, text: str) -> bool:
        self.statuses.append(text)
        return True

    def stopping(self) -> bool:
        self.sent.append("STOPPING=1")
        return True

    def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
def make_dog(fake_redis: Any, clock: ManualClock) -> Callable[..., Watchdog]:
    """Build a watchdog on fakeredis and the manual clock."""

    def make(client: Any = None, **options: Any) -> Watchdog:
        options.setdefault("streams", [STREAM])
        return Watchdog(
            fake_redis if client is None else client,
            clock=clock,
            server_clock=clock.time,
            **options,
        )

    return make


async def checks(dog: Watchdog, clock: ManualClock, count: int) -> list[InstanceReport]:
    """Advance one second and check, ``count`` times; the last reports."""
    reports: list[InstanceReport] = []
    for _ in range(count):
        await clock.advance(1.0)
        reports = await dog.check()
    return reports


def lines(caplog: pytest.LogCaptureFixture, start: str = "") -> list[str]:
    """Messages of the watchdog's log records that start with ``start``."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == WATCHDOG_LOGGER and record.getMessage().startswith(start)
    ]


def records(caplog: pytest.LogCaptureFixture, start: str) -> list[logging.LogRecord]:
    """The watchdog's log records whose message starts with ``start``."""
    return [
        record
        for record in caplog.records
        if record.name == WATCHDOG_LOGGER and record.getMessage().startswith(start)
    ]


# -- judging -----------------------------------------------------------------


async def test_watchdog_logs_status_line_per_check(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each check logs 'Status: heartbeat=X.Xs ago, status=OK' for the instance."""
    caplog.set_level(logging.INFO)
    publisher = Publisher(fake_redis, clock)
    dog = make_dog()
    await publisher.beat()
    await clock.advance(0.4)

    await dog.check()
    await clock.advance(0.6)
    await publisher.beat()
    await clock.advance(0.2)
    await dog.check()

    assert lines(caplog) == [
        "Status: heartbeat=0.4s ago, status=OK",
        "Status: heartbeat=0.2s ago, status=OK",
    ]


async def test_watchdog_age_uses_entry_id_not_publisher_timestamp(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """A publisher whose clock is an hour behind is still judged fresh."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog()
    await publisher.beat(skew_s=-3600.0)
    await clock.advance(0.5)

    [report] = await dog.check()

    assert report.verdict is Verdict.OK
    assert report.age_s == pytest.approx(0.5)


async def test_watchdog_age_uses_redis_server_time(fake_redis: Any) -> None:
    """Without an injected clock, ages are measured against Redis TIME."""
    seconds, micros = await fake_redis.time()
    server_now_s = seconds + micros / 1e6
    fields = encode_entry(HeartbeatEntry(timestamp=server_now_s, status=Status.OK))
    await fake_redis.xadd(STREAM, fields, id=f"{int((server_now_s - 5) * 1000)}-*")

    [report] = await Watchdog(fake_redis, streams=[STREAM]).check()

    assert report.verdict is Verdict.STALE
    assert report.age_s is not None
    assert 4.9 < report.age_s < 60.0


async def test_watchdog_skew_warning_once_per_instance(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A skewed publisher gets one WARNING per instance, however many entries."""
    first = Publisher(fake_redis, clock, instance="host:1")
    second = Publisher(fake_redis, clock, instance="host:2")
    dog = make_dog()

    for _ in range(4):
        await first.beat(skew_s=5.0)
        await second.beat(skew_s=-4.0)
        await clock.advance(1.0)
        reports = await dog.check()

    warnings = records(caplog, "clock skew")
    assert len(warnings) == 2
    assert all(record.levelno == logging.WARNING for record in warnings)
    assert "instance=host:1" in warnings[0].getMessage()
    assert "instance=host:2" in warnings[1].getMessage()
    assert {report.verdict for report in reports} == {Verdict.OK}


async def test_watchdog_small_skew_is_not_warned(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A timestamp within skew_warn_s of the entry ID draws no warning."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog()
    await publisher.beat(skew_s=1.5)

    await dog.check()

    assert records(caplog, "clock skew") == []


async def test_watchdog_judges_each_instance_on_its_own_entries(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """An instance that stops is STALE even while another goes on beating."""
    quiet = Publisher(fake_redis, clock, instance="alpha")
    busy = Publisher(fake_redis, clock, instance="beta")
    dog = make_dog()
    await quiet.beat()

    for _ in range(5):
        await busy.beat()
        await clock.advance(1.0)
        reports = await dog.check()

    verdicts = {report.instance: report.verdict for report in reports}
    assert verdicts == {"alpha": Verdict.STALE, "beta": Verdict.OK}


async def test_watchdog_status_lines_name_stream_and_instance_when_several(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With two instances watched, each Status line names its stream and instance."""
    caplog.set_level(logging.INFO)
    await Publisher(fake_redis, clock, instance="alpha").beat()
    await Publisher(fake_redis, clock, stream=OTHER, instance="beta").beat()
    dog = make_dog(streams=[STREAM, OTHER])

    await dog.check()

    assert lines(caplog, "Status:") == [
        f"Status: heartbeat=0.0s ago, status=OK, stream={STREAM}, instance=alpha",
        f"Status: heartbeat=0.0s ago, status=OK, stream={OTHER}, instance=beta",
    ]


async def test_watchdog_missing_stream_is_missing(
    make_dog: Callable[..., Watchdog],
) -> None:
    """A stream that does not exist is reported MISSING with 'no such key'."""
    [report] = await make_dog().check()

    assert report.verdict is Verdict.MISSING
    assert report.reason == "no such key"


async def test_watchdog_garbage_entry_is_malformed_naming_the_field(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """An unreadable newest entry is MALFORMED, and the reason names the field."""
    await fake_redis.xadd(STREAM, {"timestamp": "soon", "status": "OK"})

    [report] = await make_dog().check()

    assert report.verdict is Verdict.MALFORMED
    assert "'timestamp'" in report.reason
    assert "not a number" in report.reason


async def test_watchdog_binary_garbage_is_malformed(
    fake_redis: Any, make_dog: Callable[..., Watchdog]
) -> None:
    """Bytes that are not UTF-8 make the entry MALFORMED, never a crash."""
    await fake_redis.xadd(STREAM, {b"\xff\xfe": b"\x00\x81", b"status": b"\xc3\x28"})

    [report] = await make_dog().check()

    assert report.verdict is Verdict.MALFORMED


async def test_watchdog_readable_entry_after_garbage_clears_it(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """Garbage naming no instance counts only until a readable entry follows."""
    dog = make_dog()
    await fake_redis.xadd(STREAM, {"junk": "1"}, id="1-1")
    assert [r.verdict for r in await dog.check()] == [Verdict.MALFORMED]

    await Publisher(fake_redis, clock).beat()
    reports = await dog.check()

    assert [(r.instance, r.verdict) for r in reports] == [("host:1", Verdict.OK)]


async def test_watchdog_key_of_another_type_is_malformed(
    fake_redis: Any, make_dog: Callable[..., Watchdog]
) -> None:
    """A watched key holding a string is MALFORMED: it is not a stream."""
    await fake_redis.set(STREAM, "hello")

    [report] = await make_dog().check()

    assert report.verdict is Verdict.MALFORMED
    assert "not a stream" in report.reason or "other than a stream" in report.reason


# -- reading -----------------------------------------------------------------


async def test_watchdog_reads_all_streams_in_one_pipeline(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """A pass over 50 streams is one round trip; later passes use XREAD only."""
    streams = [f"svc:{n}.heartbeat" for n in range(50)]
    for stream in streams:
        await Publisher(fake_redis, clock, stream=stream).beat()
    client = CountingRedis(fake_redis)
    dog = make_dog(client, streams=streams)

    await dog.check()
    await clock.advance(1.0)
    reports = await dog.check()

    assert len(client.pipelines) == 2
    assert client.pipelines[1] == ["XREAD"]
    assert len(reports) == 50


async def test_watchdog_reads_only_new_entries(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """A later pass asks from the last seen ID and sees the newest entry."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog()
    await publisher.beat()
    await dog.check()
    await clock.advance(1.0)
    newest = await publisher.beat()

    [report] = await dog.check()

    assert report.entry_id == newest
    assert report.entry is not None
    assert report.entry.seq == 1


async def test_watchdog_pattern_finds_streams_created_later(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """A stream created after start is picked up at the next rescan."""
    await Publisher(fake_redis, clock).beat()
    dog = make_dog(streams=(), pattern="svc:*.heartbeat", rescan_s=5.0)
    assert [r.stream for r in await dog.check()] == [STREAM]

    await Publisher(fake_redis, clock, stream=OTHER).beat()
    await clock.advance(5.0)
    reports = await dog.check()

    assert [r.stream for r in reports] == [STREAM, OTHER]


async def test_watchdog_forgets_old_instance_while_stream_lives(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An instance silent for forget_after_s is dropped once others go on."""
    caplog.set_level(logging.INFO)
    gone = Publisher(fake_redis, clock, instance="worker-a")
    alive = Publisher(fake_redis, clock, instance="worker-b")
    dog = make_dog(forget_after_s=10.0)
    await gone.beat()

    for _ in range(12):
        await alive.beat()
        await clock.advance(1.0)
        reports = await dog.check()

    assert [r.instance for r in reports] == ["worker-b"]
    assert len(lines(caplog, "Forgot:")) == 1


async def test_watchdog_keeps_newest_instance_of_a_stream_however_old(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """The only instance of a stream stays STALE, not forgotten into silence."""
    await Publisher(fake_redis, clock).beat()
    dog = make_dog(forget_after_s=10.0)

    reports = await checks(dog, clock, 20)

    assert [r.verdict for r in reports] == [Verdict.STALE]


async def test_watchdog_restart_on_same_host_replaces_old_instance(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A new pid on the same host ends the crashed one's STALE with a recovery."""
    caplog.set_level(logging.INFO)
    crashed = Publisher(fake_redis, clock, instance="host:100")
    dog = make_dog()
    await crashed.beat()
    await checks(dog, clock, 6)
    assert len(lines(caplog, "Alert:")) == 1

    await Publisher(fake_redis, clock, instance="host:200").beat()
    reports = await dog.check()

    assert [(r.instance, r.verdict) for r in reports] == [("host:200", Verdict.OK)]
    [recovered] = lines(caplog, "Recovered:")
    assert "replaced by host:200" in recovered


async def test_watchdog_concurrent_replicas_on_one_host_are_not_replacements(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """Two processes on one host beating side by side: one dying is STALE."""
    dying = Publisher(fake_redis, clock, instance="host:100")
    living = Publisher(fake_redis, clock, instance="host:200")
    dog = make_dog()
    await dying.beat()
    await living.beat()

    for _ in range(6):
        await clock.advance(1.0)
        await living.beat()
        reports = await dog.check()

    verdicts = {r.instance: r.verdict for r in reports}
    assert verdicts == {"host:100": Verdict.STALE, "host:200": Verdict.OK}


async def test_watchdog_stopped_instance_replaced_by_another_is_dropped(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """After a planned stop and a new instance, only the new one is reported."""
    old = Publisher(fake_redis, clock, instance="host:100")
    await old.beat()
    await old.beat(Status.STOPPED)
    await clock.advance(1.0)
    await Publisher(fake_redis, clock, instance="host:200").beat()

    reports = await make_dog().check()

    assert [(r.instance, r.verdict) for r in reports] == [("host:200", Verdict.OK)]


# -- hysteresis and transitions ---------------------------------------------


async def test_watchdog_one_bad_check_does_not_alert(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A single STALE check between OK ones logs no transition at all."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog()
    await publisher.beat()
    await checks(dog, clock, 4)
    assert dog.last_reports[0].verdict is Verdict.STALE

    await publisher.beat()
    await checks(dog, clock, 1)

    assert lines(caplog, "Alert:") == []
    assert lines(caplog, "Recovered:") == []


async def test_watchdog_alerts_after_alert_after_checks(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """STALE is confirmed on the alert_after-th consecutive STALE check."""
    seen: list[Transition] = []
    publisher = Publisher(fake_redis, clock)
    dog = make_dog(alert_after=3)
    dog.add_listener(seen.append)
    await publisher.beat()

    await checks(dog, clock, 5)
    assert seen == []
    await checks(dog, clock, 1)

    [transition] = seen
    assert (transition.previous, transition.verdict) == (Verdict.OK, Verdict.STALE)
    assert transition.is_alert


async def test_watchdog_logs_each_transition_once(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ten STALE checks give one ERROR line with the reason, and no other."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog()
    await publisher.beat()

    await checks(dog, clock, 14)

    alerts = records(caplog, "Alert:")
    assert len(alerts) == 1
    assert alerts[0].levelno == logging.ERROR
    message = alerts[0].getMessage()
    assert "status=STALE was=OK" in message
    assert "reason=no heartbeat for" in message
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == alerts


async def test_watchdog_degraded_transition_is_a_warning_with_reason(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A confirmed DEGRADED is logged once at WARNING with the published reason."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog()
    for _ in range(4):
        await publisher.beat(Status.DEGRADED, reason="cycle_ms=612>500")
        await checks(dog, clock, 1)

    [alert] = records(caplog, "Alert:")
    assert alert.levelno == logging.WARNING
    assert "status=DEGRADED" in alert.getMessage()
    assert "reason=cycle_ms=612>500" in alert.getMessage()


async def test_watchdog_recovery_needs_recover_after_ok_checks(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Recovery is logged at INFO after recover_after OK checks, with its length."""
    caplog.set_level(logging.INFO)
    publisher = Publisher(fake_redis, clock)
    dog = make_dog(recover_after=3)
    for _ in range(3):
        await publisher.beat(Status.DEGRADED, reason="cycle_ms=900>500")
        await checks(dog, clock, 1)

    for _ in range(2):
        await publisher.beat()
        await checks(dog, clock, 1)
    assert lines(caplog, "Recovered:") == []
    await publisher.beat()
    await checks(dog, clock, 1)

    [recovered] = records(caplog, "Recovered:")
    assert recovered.levelno == logging.INFO
    assert "status=OK was=DEGRADED after=3.0s" in recovered.getMessage()


async def test_watchdog_flapping_below_threshold_stays_quiet(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DEGRADED and OK alternating never holds long enough to alert."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog()
    for n in range(10):
        await publisher.beat(Status.DEGRADED if n % 2 else Status.OK, reason="x")
        await checks(dog, clock, 1)

    assert lines(caplog, "Alert:") == []


async def test_watchdog_clean_stop_logged_once_at_info_without_alert(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A STOPPED entry is one INFO line, no alert, and never turns STALE."""
    caplog.set_level(logging.INFO)
    seen: list[Transition] = []
    publisher = Publisher(fake_redis, clock)
    dog = make_dog(alert_stream="alerts")
    dog.add_listener(seen.append)
    await publisher.beat()
    await checks(dog, clock, 1)
    await publisher.beat(Status.STOPPED)

    reports = await checks(dog, clock, 10)

    [changed] = records(caplog, "Changed:")
    assert changed.levelno == logging.INFO
    assert "status=STOPPED was=OK" in changed.getMessage()
    assert [r.verdict for r in reports] == [Verdict.STOPPED]
    assert [t.is_alert for t in seen] == [False]
    await dog.stop()
    assert await fake_redis.xlen("alerts") == 0


async def test_watchdog_first_sight_of_healthy_instance_is_silent(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """Starting to watch a healthy instance is no transition."""
    seen: list[Transition] = []
    dog = make_dog()
    dog.add_listener(seen.append)
    await Publisher(fake_redis, clock).beat()

    await dog.check()

    assert seen == []


async def test_watchdog_quiet_ok_thins_ok_lines_only(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With quiet_ok_s=5, OK lines appear every 5 s; STALE lines every check."""
    caplog.set_level(logging.INFO)
    publisher = Publisher(fake_redis, clock)
    dog = make_dog(quiet_ok_s=5.0)
    for _ in range(10):
        await publisher.beat()
        await checks(dog, clock, 1)
    assert len(lines(caplog, "Status:")) == 2

    caplog.clear()
    await checks(dog, clock, 6)

    statuses = lines(caplog, "Status:")
    stale = [line for line in statuses if "status=STALE" in line]
    assert len(stale) == 4
    assert len(statuses) - len(stale) <= 1


async def test_watchdog_report_listener_gets_every_check(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """add_report_listener receives the reports of each check."""
    seen: list[list[Verdict]] = []
    dog = make_dog()
    dog.add_report_listener(lambda reports: seen.append([r.verdict for r in reports]))
    await Publisher(fake_redis, clock).beat()

    await checks(dog, clock, 3)

    assert seen == [[Verdict.OK], [Verdict.OK], [Verdict.OK]]


async def test_watchdog_failing_listener_is_logged_once_and_skipped(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A listener that raises is logged once; checks and other listeners go on."""
    seen: list[int] = []

    def broken(reports: Any) -> None:
        raise RuntimeError("listener bug")

    dog = make_dog()
    dog.add_report_listener(broken)
    dog.add_report_listener(lambda reports: seen.append(len(reports)))
    await Publisher(fake_redis, clock).beat()

    await checks(dog, clock, 3)

    assert seen == [1, 1, 1]
    assert len(lines(caplog, "watchdog listener failed")) == 1


# -- Redis unreachable ---------------------------------------------------------


async def test_watchdog_unreachable_logged_once_and_recovery_logged(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An outage is one ERROR line however long, then one INFO recovery line."""
    caplog.set_level(logging.INFO)
    client = CountingRedis(fake_redis)
    publisher = Publisher(fake_redis, clock)
    dog = make_dog(client)
    await publisher.beat()
    await dog.check()

    client.down = True
    reports = await checks(dog, clock, 8)
    assert [r.verdict for r in reports] == [Verdict.UNREACHABLE]
    assert not dog.reachable
    client.down = False
    await publisher.beat()
    await checks(dog, clock, 3)

    [alert] = records(caplog, "Alert: status=UNREACHABLE")
    assert alert.levelno == logging.ERROR
    assert "ConnectionError" in alert.getMessage()
    [recovered] = lines(caplog, "Recovered:")
    assert "was=UNREACHABLE after=8.0s" in recovered
    assert records(caplog, "Alert: status=STALE") == []


async def test_watchdog_check_never_raises_on_timeout(
    make_dog: Callable[..., Watchdog],
) -> None:
    """A Redis that does not answer in time gives UNREACHABLE, not an exception."""

    class Hanging:
        def pipeline(self, transaction: bool = True) -> Any:
            return self

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

        async def execute(self, raise_on_error: bool = True) -> Any:
            await asyncio.Event().wait()

    dog = Watchdog(Hanging(), streams=[STREAM], timeout_s=0.05)

    [report] = await dog.check()

    assert report.verdict is Verdict.UNREACHABLE
    assert "no reply within 0.05s" in report.reason


# -- alerts --------------------------------------------------------------------


async def test_watchdog_alert_stream_gets_alert_and_recovery(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """--alert-stream gets one entry per alert and per recovery, with details."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog(alert_stream="alerts")
    await publisher.beat()
    await checks(dog, clock, 6)
    for _ in range(3):
        await publisher.beat()
        await checks(dog, clock, 1)
    await dog.stop()

    entries = await fake_redis.xrange("alerts")
    fields = [{k.decode(): v.decode() for k, v in f.items()} for _, f in entries]
    assert [(f["previous"], f["verdict"]) for f in fields] == [
        ("OK", "STALE"),
        ("STALE", "OK"),
    ]
    assert fields[0]["stream"] == STREAM
    assert fields[0]["instance"] == "host:1"
    assert float(fields[0]["age_s"]) > 3.0
    assert fields[1]["recovery"] == "1"


async def test_watchdog_never_writes_to_heartbeat_streams(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """Checks, alerts and recoveries leave the heartbeat stream untouched."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog(alert_stream="alerts")
    await publisher.beat()

    await checks(dog, clock, 8)
    await dog.stop()

    assert await fake_redis.xlen(STREAM) == 1


@pytest.mark.parametrize(
    "options",
    [
        {"streams": [STREAM], "alert_stream": STREAM},
        {"streams": (), "pattern": "svc:*.heartbeat", "alert_stream": STREAM},
    ],
)
def test_watchdog_refuses_alert_stream_that_is_watched(
    fake_redis: Any, options: dict[str, Any]
) -> None:
    """An alert stream among the watched streams is refused at construction."""
    with pytest.raises(ConfigError, match="never writes"):
        Watchdog(fake_redis, **options)


async def test_watchdog_on_alert_runs_command_with_details(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--on-alert runs the command with EXIT_HEARTBEAT_* set and no REDIS_URL."""
    monkeypatch.setenv("REDIS_URL", "redis://:alert-secret@localhost:6379/0")
    out = tmp_path / "alert.env"
    command = f"env | grep -e ^EXIT_HEARTBEAT_ -e ^REDIS_URL | sort > {out}"
    publisher = Publisher(fake_redis, clock)
    dog = make_dog(on_alert=command)
    await publisher.beat()

    await checks(dog, clock, 6)
    await dog.stop()

    env = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert env["EXIT_HEARTBEAT_VERDICT"] == "STALE"
    assert env["EXIT_HEARTBEAT_PREVIOUS"] == "OK"
    assert env["EXIT_HEARTBEAT_STREAM"] == STREAM
    assert env["EXIT_HEARTBEAT_INSTANCE"] == "host:1"
    assert env["EXIT_HEARTBEAT_REASON"].startswith("no heartbeat for")
    assert float(env["EXIT_HEARTBEAT_AGE_S"]) > 3.0
    assert "REDIS_URL" not in env


async def test_watchdog_on_alert_slow_command_is_killed_without_blocking(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hung command does not hold up checks and is killed at its timeout."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog(on_alert="sleep 60", alert_timeout_s=0.3)
    await publisher.beat()

    started = time.monotonic()
    await checks(dog, clock, 8)
    checking_s = time.monotonic() - started
    await dog.stop()

    assert checking_s < 0.3
    killed = [r for r in caplog.records if "alert command killed" in r.getMessage()]
    assert len(killed) == 1


async def test_watchdog_on_alert_failure_is_logged(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command that exits non-zero is logged with its code and output."""
    publisher = Publisher(fake_redis, clock)
    dog = make_dog(on_alert="echo pager down >&2; exit 7")
    await publisher.beat()

    await checks(dog, clock, 6)
    await dog.stop()

    failures = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("alert command failed")
    ]
    assert len(failures) == 1
    assert "exit_code=7" in failures[0]
    assert "pager down" in failures[0]


# -- the loop and its life -------------------------------------------------------


async def test_watchdog_run_notifies_ready_watchdog_and_status(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """run() sends READY once, WATCHDOG every tick and STATUS on change."""
    notifier = FakeNotifier()
    await Publisher(fake_redis, clock).beat()
    dog = make_dog(notifier=notifier)

    task = asyncio.ensure_future(dog.run())
    await clock.advance(2.5)
    await dog.stop()
    await task

    assert notifier.sent.count("READY=1") == 1
    assert notifier.sent.count("WATCHDOG=1") == 3
    assert notifier.statuses == ["1 watched: 1 OK"]
    assert notifier.sent[-1] == "STOPPING=1"
    assert dog.state is WatchdogState.STOPPED


async def test_watchdog_run_backs_off_while_unreachable(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """While Redis is down attempts double their spacing; pings go on."""
    notifier = FakeNotifier()
    client = CountingRedis(fake_redis)
    client.down = True
    dog = make_dog(client, notifier=notifier, backoff_max_s=8.0)

    task = asyncio.ensure_future(dog.run())
    await clock.advance(30.5)
    await dog.stop()
    await task

    # Attempts at 0, 1, 3, 7, 15, 23: spacings 1, 2, 4, 8, 8.
    assert len(client.pipelines) == 6
    assert notifier.sent.count("WATCHDOG=1") == 31


async def test_watchdog_stop_is_idempotent_and_run_once(
    make_dog: Callable[..., Watchdog],
) -> None:
    """stop() may be called twice; a stopped watchdog refuses to run again."""
    dog = make_dog()

    await dog.stop()
    await dog.stop()

    assert dog.state is WatchdogState.STOPPED
    with pytest.raises(RuntimeError, match="create a new Watchdog"):
        await dog.run()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alert_after": 0}, "alert_after must be a whole number"),
        ({"stale_after_s": -1}, "stale_after_s must be a positive number"),
        ({"interval_s": math.nan}, "interval_s must be a positive number"),
        ({"streams": "svc:a.heartbeat"}, "write streams=\\['svc:a.heartbeat'\\]"),
        ({"quiet_ok_s": "5"}, "quiet_ok_s must be a number"),
    ],
)
def test_watchdog_bad_option_names_option_and_value(
    fake_redis: Any, options: dict[str, Any], message: str
) -> None:
    """Each bad option is refused at construction with a message naming it."""
    with pytest.raises(ConfigError, match=message):
        Watchdog(fake_redis, **options)


# -- one-shot check ------------------------------------------------------------


async def test_check_streams_has_no_hysteresis(
    fake_redis: Any,
) -> None:
    """check_streams reports STALE on the first look at an old entry."""
    seconds, _ = await fake_redis.time()
    fields = encode_entry(HeartbeatEntry(timestamp=seconds - 10, status=Status.OK))
    await fake_redis.xadd(STREAM, fields, id=f"{(seconds - 10) * 1000}-*")

    [report] = await check_streams(fake_redis, [STREAM])

    assert report.verdict is Verdict.STALE


async def test_check_streams_unreachable_reports_each_stream(
    fake_redis: Any,
) -> None:
    """With Redis down, each requested stream is reported UNREACHABLE."""
    client = CountingRedis(fake_redis)
    client.down = True

    reports = await check_streams(client, [STREAM, OTHER])

    assert [(r.stream, r.verdict) for r in reports] == [
        (STREAM, Verdict.UNREACHABLE),
        (OTHER, Verdict.UNREACHABLE),
    ]


async def test_watchdog_missing_stream_that_appears_is_a_recovery(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An alerted MISSING stream whose service starts is logged as recovered."""
    caplog.set_level(logging.INFO)
    dog = make_dog()
    await checks(dog, clock, 3)
    assert len(lines(caplog, "Alert: status=MISSING")) == 1

    await Publisher(fake_redis, clock).beat()
    reports = await dog.check()

    assert [(r.instance, r.verdict) for r in reports] == [("host:1", Verdict.OK)]
    [recovered] = lines(caplog, "Recovered:")
    assert "was=MISSING" in recovered
    assert "reason=the stream has readable entries now" in recovered


async def test_watchdog_run_stops_pinging_while_checks_fail_on_a_bug(
    make_dog: Callable[..., Watchdog],
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A check that raises unexpectedly is logged once and systemd is not pinged."""

    class Garbled:
        def pipeline(self, transaction: bool = True) -> Any:
            return self

        def xrevrange(self, *args: Any, **kwargs: Any) -> None:
            """Queued, and then answered with nothing at all."""

        async def execute(self, raise_on_error: bool = True) -> Any:
            return []

    notifier = FakeNotifier()
    dog = make_dog(Garbled(), notifier=notifier)

    task = asyncio.ensure_future(dog.run())
    await clock.advance(3.5)
    await dog.stop()
    await task

    assert notifier.sent.count("WATCHDOG=1") == 0
    assert notifier.sent.count("READY=1") == 1
    assert len(lines(caplog, "watchdog check failed")) == 1


async def test_watchdog_deleted_stream_turns_missing(
    fake_redis: Any,
    clock: ManualClock,
    make_dog: Callable[..., Watchdog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stream deleted under the watchdog goes STALE, then MISSING within 20 s."""
    caplog.set_level(logging.INFO)
    await Publisher(fake_redis, clock).beat()
    dog = make_dog()
    await dog.check()
    await fake_redis.delete(STREAM)

    reports = await checks(dog, clock, 24)

    assert [(r.instance, r.verdict, r.reason) for r in reports] == [
        ("", Verdict.MISSING, "no such key")
    ]
    [forgot] = lines(caplog, "Forgot:")
    assert "why=the stream was deleted" in forgot
    alerts = lines(caplog, "Alert:")
    assert [a.split()[1] for a in alerts] == ["status=STALE", "status=MISSING"]


async def test_watchdog_quiet_live_stream_is_not_asked_to_exist(
    fake_redis: Any, clock: ManualClock, make_dog: Callable[..., Watchdog]
) -> None:
    """A stream with recent entries costs only its share of an XREAD."""
    publisher = Publisher(fake_redis, clock)
    client = CountingRedis(fake_redis)
    dog = make_dog(client)
    for _ in range(15):
        await publisher.beat()
        await checks(dog, clock, 1)

    assert all(commands == ["XREAD"] for commands in client.pipelines[1:])
