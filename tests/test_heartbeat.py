"""Tests of the heartbeat publisher on fakeredis, with a manual clock."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.exceptions

from exit_heartbeat import (
    DEFAULT_STREAM,
    AlreadyAttachedError,
    AttachError,
    ConfigError,
    Heartbeat,
    HeartbeatState,
    Status,
    attach_heartbeat,
    decision,
    timed_cycle,
)
from exit_heartbeat import cycle as cycle_module
from exit_heartbeat.testing import ManualClock
from tests.fields import SPEC_FIELDS

LOGGER = "exit_heartbeat.heartbeat"


class ExitBrain:
    """The service of the specification's quick start."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.active_positions: dict[str, float] = {}
        self.fail = False

    @timed_cycle
    @decision
    async def process_cycle(self) -> None:
        if self.fail:
            raise RuntimeError("no price")


class Quiet:
    """A service with no decorated method: only the schedule can degrade it."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.active_positions: dict[str, float] = {}


class FlakyRedis(fakeredis.aioredis.FakeRedis):  # type: ignore[misc]
    """A fake client whose XADD fails, hangs or answers wrongly on demand.

    Modes: ``ok``, ``error`` (raises ConnectionError), ``hang`` (never
    answers), ``stubborn`` (never answers and ignores cancellation until
    `release` is set), ``wrong`` (answers something that is not an entry ID),
    ``cancelled`` (ends cancelled, as when something else cancels the command).
    """

    mode = "ok"

    def prepare(self) -> FlakyRedis:
        self.calls: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()
        return self

    async def xadd(self, name: Any, fields: Any, **kwargs: Any) -> Any:
        self.calls.append((dict(fields), kwargs))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.mode == "error":
                raise redis.exceptions.ConnectionError("Connection refused")
            if self.mode == "hang":
                await asyncio.get_running_loop().create_future()
            if self.mode == "stubborn":
                while not self.release.is_set():
                    try:
                        await self.release.wait()
                    except asyncio.CancelledError:
                        continue
                return b"1-0"
            if self.mode == "wrong":
                return b"OK"
            if self.mode == "cancelled":
                raise asyncio.CancelledError
            return await super().xadd(name, fields, **kwargs)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def flaky() -> AsyncIterator[FlakyRedis]:
    """A FlakyRedis that works until the test changes its mode."""
    client = FlakyRedis().prepare()
    yield client
    client.release.set()
    await client.aclose()


Attach = Callable[..., Heartbeat]


@pytest.fixture(autouse=True)
def info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture the library's INFO records too: recoveries are logged at INFO."""
    caplog.set_level(logging.INFO, logger="exit_heartbeat")


@pytest.fixture
async def attach(clock: ManualClock) -> AsyncIterator[Attach]:
    """attach_heartbeat on the manual clock; every heartbeat stopped after."""
    started: list[Heartbeat] = []

    def start(service: object, redis: Any = None, **options: Any) -> Heartbeat:
        options.setdefault("clock", clock)
        heartbeat = attach_heartbeat(service, redis, **options)
        started.append(heartbeat)
        return heartbeat

    yield start
    for heartbeat in started:
        stopping = asyncio.ensure_future(heartbeat.stop())
        while not stopping.done():
            await clock.advance(1.0)
        await stopping


async def read_entries(
    client: Any, stream: str = DEFAULT_STREAM
) -> list[dict[str, str]]:
    """Every entry of ``stream``, oldest first, decoded to text."""
    return [
        {key.decode(): value.decode() for key, value in fields.items()}
        for _, fields in await client.xrange(stream)
    ]


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The heartbeat's own log records."""
    return [r for r in caplog.records if r.name == LOGGER]


# -- entries ------------------------------------------------------------------


async def test_attach_heartbeat_publishes_every_field_at_once(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """The first entry goes out at attach time with every specified field."""
    service = ExitBrain(fake_redis)
    service.active_positions = {"BTC": 1.0, "ETH": 2.0}
    attach(service)
    await clock.settle()

    [entry] = await read_entries(fake_redis)

    assert set(entry) >= SPEC_FIELDS
    assert entry["status"] == "OK"
    assert entry["reason"] == ""
    assert entry["active_positions_count"] == "2"
    assert entry["pending_exits"] == "0"
    assert entry["last_decision_ts"] == "0"
    assert entry["last_cycle_ts"] == "0"
    assert entry["loop_cycle_ms"] == "0.000"
    assert entry["cycles"] == "0"
    assert entry["timestamp"] == f"{clock.time():.6f}"
    assert entry["service"] == "ExitBrain"
    assert entry["instance"] == f"{socket.gethostname()}:{os.getpid()}"
    assert entry["seq"] == "0"
    assert entry["interval_s"] == "1.0"
    assert entry["schema_version"] == "1"


async def test_heartbeat_sends_every_value_as_a_string(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis
) -> None:
    """XADD is given text values only, never numbers or None."""
    attach(ExitBrain(flaky))
    await clock.settle()

    fields, _ = flaky.calls[0]

    assert fields
    assert all(isinstance(value, str) for value in fields.values())


async def test_heartbeat_publishes_one_entry_per_interval(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """Each interval adds one entry, numbered in order, one interval apart."""
    attach(Quiet(fake_redis), interval_s=0.5)
    start = clock.time()

    await clock.advance(2.6)
    entries = await read_entries(fake_redis)

    assert [e["seq"] for e in entries] == ["0", "1", "2", "3", "4", "5"]
    assert [float(e["timestamp"]) - start for e in entries] == pytest.approx(
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    )
    assert all(e["interval_s"] == "0.5" for e in entries)


async def test_heartbeat_keeps_the_rate_for_an_hour(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """An hour at 1 s gives 3600 entries, none skipped."""
    heartbeat = attach(Quiet(fake_redis), maxlen=10_000)

    await clock.advance(3599.5)

    assert heartbeat.published == 3600
    assert heartbeat.skipped == 0
    assert await fake_redis.xlen(DEFAULT_STREAM) == 3600


async def test_heartbeat_slow_publish_does_not_shift_the_schedule(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis
) -> None:
    """Beats stay on their slots even when each publish takes a while."""
    original = flaky.xadd

    async def slow_xadd(name: Any, fields: Any, **kwargs: Any) -> Any:
        await clock.sleep(0.3)
        return await original(name, fields, **kwargs)

    flaky.xadd = slow_xadd  # type: ignore[method-assign]
    attach(Quiet(flaky))
    start = clock.time()

    await clock.advance(99.9)
    entries = await read_entries(flaky)

    assert len(entries) == 100
    assert float(entries[-1]["timestamp"]) - start == pytest.approx(99.0)


async def test_heartbeat_skips_slots_missed_by_a_blocked_loop(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """A blocked loop gets one late beat showing its lag, not a burst."""
    heartbeat = attach(Quiet(fake_redis))
    await clock.settle()

    await clock.block(3.5)
    entries = await read_entries(fake_redis)

    assert len(entries) == 2
    assert heartbeat.skipped == 2
    late = entries[-1]
    assert late["loop_lag_ms"] == "2500.000"
    assert late["status"] == "DEGRADED"
    assert late["reason"] == "loop_lag_ms=2500>250"

    await clock.advance(0.5)
    entries = await read_entries(fake_redis)

    assert len(entries) == 3
    assert entries[-1]["loop_lag_ms"] == "0.000"
    assert entries[-1]["status"] == "OK"


async def test_heartbeat_schedule_ignores_wall_clock_steps(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """A wall clock stepped back an hour neither stops nor bursts the beats."""
    heartbeat = attach(Quiet(fake_redis))
    await clock.advance(2.5)

    clock.step_wall(-3600.0)
    await clock.advance(3.0)

    assert heartbeat.published == 6
    assert heartbeat.skipped == 0


# -- health on the beat -------------------------------------------------------


async def test_heartbeat_shows_a_hang_the_beat_would_hide(
    attach: Attach, clock: ManualClock, fake_redis: Any, caplog: Any
) -> None:
    """A cycle stuck awaiting degrades the beat after stall_after_s, then recovers."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    class Hanging(ExitBrain):
        @timed_cycle
        async def process_cycle(self) -> None:
            await gate

    service = Hanging(fake_redis)
    heartbeat = attach(service, stall_after_s=5.0)
    stuck = asyncio.ensure_future(service.process_cycle())

    await clock.advance(5.0)
    assert heartbeat.last_status is Status.OK
    await clock.advance(1.0)
    assert heartbeat.last_status is Status.DEGRADED
    assert heartbeat.last_reason == "no_cycle_s=6.0>5"
    await clock.advance(3.0)
    assert heartbeat.published == 10

    gate.set_result(None)
    await stuck
    await clock.advance(3.0)

    assert heartbeat.last_status is Status.OK
    messages = [r.getMessage() for r in records(caplog)]
    assert sum("DEGRADED" in m for m in messages) == 1
    assert sum("OK again" in m for m in messages) == 1


async def test_heartbeat_logs_a_flapping_rule_once(
    attach: Attach, clock: ManualClock, fake_redis: Any, caplog: Any
) -> None:
    """A cycle time hovering around its limit logs one WARNING, not one a beat."""
    service = ExitBrain(fake_redis)
    heartbeat = attach(service, max_cycle_ms=500.0)

    for beat in range(10):
        cycle_module._record_for(service).report(600.0 if beat % 2 else 100.0)
        await clock.advance(1.0)

    messages = [r.getMessage() for r in records(caplog)]
    assert heartbeat.published >= 10
    assert sum("DEGRADED" in m for m in messages) == 1
    assert sum("OK again" in m for m in messages) == 0


async def test_heartbeat_fresh_start_has_decision_grace(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """Open positions and no decision: OK for decision_timeout_s, then DEGRADED."""
    service = Quiet(fake_redis)
    service.active_positions = {"BTC": 1.0}
    heartbeat = attach(service, decision_timeout_s=3.0)

    await clock.advance(3.0)
    assert heartbeat.last_status is Status.OK

    await clock.advance(1.0)
    assert heartbeat.last_status is Status.DEGRADED
    assert heartbeat.last_reason == "no_decision_s=4.0>3 positions=1"


@pytest.mark.parametrize("step_s", [-3600.0, 3600.0])
async def test_heartbeat_wall_clock_step_triggers_no_rule(
    attach: Attach,
    clock: ManualClock,
    fake_redis: Any,
    monkeypatch: pytest.MonkeyPatch,
    step_s: float,
) -> None:
    """A wall clock stepped an hour while cycles go on leaves the service OK."""
    wall = [1_800_000_000.0]
    monkeypatch.setattr(cycle_module, "_wall_clock", lambda: wall[0])
    service = ExitBrain(fake_redis)
    service.active_positions = {"BTC": 1.0}
    heartbeat = attach(service)

    for second in range(15):
        if second == 5:
            wall[0] += step_s
            clock.step_wall(step_s)
        wall[0] += 1.0
        await service.process_cycle()
        await clock.advance(1.0)

    assert heartbeat.last_status is Status.OK
    assert heartbeat.published == 16


async def test_heartbeat_decision_resets_the_decision_rule(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """A decision after a long silence brings the status back to OK."""
    service = ExitBrain(fake_redis)
    service.active_positions = {"BTC": 1.0}
    heartbeat = attach(service, decision_timeout_s=2.0, stall_after_s=60.0)
    await clock.advance(3.0)
    assert heartbeat.last_reason.startswith("no_decision_s=3.0>2")

    await service.process_cycle()
    await clock.advance(1.0)

    assert heartbeat.last_status is Status.OK
    entry = (await read_entries(fake_redis))[-1]
    assert float(entry["last_decision_ts"]) > 0
    assert entry["cycles"] == "1"


async def test_heartbeat_slow_cycle_between_beats_is_not_hidden(
    attach: Attach,
    clock: ManualClock,
    fake_redis: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 900 ms cycle between two beats degrades the next beat only."""
    perf = [0.0]
    monkeypatch.setattr(cycle_module, "_perf_counter", lambda: perf[0])
    durations = iter([0.9, 0.01])

    class Timed(ExitBrain):
        @timed_cycle
        async def process_cycle(self) -> None:
            perf[0] += next(durations)

    service = Timed(fake_redis)
    heartbeat = attach(service)
    await clock.settle()
    await service.process_cycle()
    await service.process_cycle()

    await clock.advance(1.0)
    entry = (await read_entries(fake_redis))[-1]
    assert entry["status"] == "DEGRADED"
    assert entry["reason"] == "cycle_ms=900>500"
    assert entry["max_cycle_ms"] == "900.000"
    assert entry["loop_cycle_ms"] == "10.000"

    await clock.advance(1.0)
    assert heartbeat.last_status is Status.OK


async def test_heartbeat_consecutive_errors_degrade(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """Three cycles in a row that raised degrade the beat and count as errors."""
    service = ExitBrain(fake_redis)
    service.fail = True
    heartbeat = attach(service)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await service.process_cycle()

    await clock.advance(1.0)
    entry = (await read_entries(fake_redis))[-1]

    assert heartbeat.last_reason == "consecutive_errors=3>=3"
    assert (entry["cycles"], entry["errors"]) == ("3", "3")


# -- reading the service -------------------------------------------------------


class ClassCycle(Quiet):
    """A service whose cycle is a classmethod, decorators outside it."""

    @timed_cycle
    @decision
    @classmethod
    async def process_cycle(cls) -> None:
        pass


class ClassCycleInner(Quiet):
    """A service whose cycle is a classmethod, decorators inside it."""

    @classmethod
    @timed_cycle
    @decision
    async def process_cycle(cls) -> None:
        pass


class StaticCycle(Quiet):
    """A service whose cycle is a staticmethod, decorators outside it."""

    @timed_cycle
    @decision
    @staticmethod
    async def process_cycle() -> None:
        pass


class StaticCycleInner(Quiet):
    """A service whose cycle is a staticmethod, decorators inside it."""

    @staticmethod
    @timed_cycle
    @decision
    async def process_cycle() -> None:
        pass


@pytest.mark.parametrize(
    "kind", [ClassCycle, ClassCycleInner, StaticCycle, StaticCycleInner]
)
async def test_heartbeat_reads_cycles_of_classmethods_and_staticmethods(
    attach: Attach, clock: ManualClock, fake_redis: Any, kind: type[Quiet]
) -> None:
    """A cycle decorated as a classmethod or staticmethod is read, not stalled."""
    service = kind(fake_redis)
    service.active_positions = {"BTC": 1.0}
    heartbeat = attach(service)
    await clock.settle()

    for _ in range(12):
        await service.process_cycle()  # type: ignore[attr-defined]
        await clock.advance(1.0)

    assert heartbeat.last_status is Status.OK
    assert heartbeat.last_entry is not None
    assert heartbeat.last_entry.cycles == 12
    assert heartbeat.last_entry.last_decision_ts is not None


async def test_heartbeat_counts_an_int_positions_attribute_as_is(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """active_positions holding a number is published as that number."""
    service = Quiet(fake_redis)
    service.active_positions = 7  # type: ignore[assignment]
    attach(service)
    await clock.settle()

    assert (await read_entries(fake_redis))[0]["active_positions_count"] == "7"


async def test_heartbeat_counts_positions_by_attribute_name(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """positions= names the attribute to count, as a plans_generated counter."""

    class Planner:
        def __init__(self) -> None:
            self.redis = fake_redis
            self.plans_generated = 0

    service = Planner()
    attach(service, positions="plans_generated")
    await clock.settle()
    service.plans_generated = 4
    await clock.advance(1.0)

    counts = [e["active_positions_count"] for e in await read_entries(fake_redis)]
    assert counts == ["0", "4"]


async def test_heartbeat_counts_positions_with_a_callable(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """positions= may be a function of the service."""
    service = Quiet(fake_redis)
    service.active_positions = {"BTC": 1.0, "ETH": 0.0}
    attach(
        service,
        positions=lambda s: sum(1 for v in s.active_positions.values() if v),
    )
    await clock.settle()

    assert (await read_entries(fake_redis))[0]["active_positions_count"] == "1"


async def test_heartbeat_reads_pending_exits(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """pending_exits comes from the service attribute when it has one."""
    service = Quiet(fake_redis)
    service.pending_exits = ["BTC", "ETH"]  # type: ignore[attr-defined]
    attach(service)
    await clock.settle()

    assert (await read_entries(fake_redis))[0]["pending_exits"] == "2"


async def test_heartbeat_reads_an_undecorated_service_from_its_attributes(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """last_decision_ts and _last_cycle_ms kept by the service are published."""

    class Legacy:
        def __init__(self) -> None:
            self.redis = fake_redis
            self.active_positions = {"BTC": 1.0}
            self.last_decision_ts = 1_800_000_000.25
            self._last_cycle_ms = 612

    attach(Legacy())
    await clock.settle()
    [entry] = await read_entries(fake_redis)

    assert entry["last_decision_ts"] == "1800000000.250000"
    assert entry["loop_cycle_ms"] == "612.000"
    assert entry["status"] == "DEGRADED"
    assert entry["reason"] == "cycle_ms=612>500"


async def test_heartbeat_read_error_degrades_and_logs_once(
    attach: Attach, clock: ManualClock, fake_redis: Any, caplog: Any
) -> None:
    """A counter that raises degrades every beat, is logged once, then recovers."""
    broken = [False]

    def count(service: Quiet) -> int:
        if broken[0]:
            raise ZeroDivisionError("division by zero")
        return 1

    heartbeat = attach(Quiet(fake_redis), positions=count)
    await clock.settle()
    caplog.clear()

    broken[0] = True
    await clock.advance(3.0)
    assert heartbeat.last_status is Status.DEGRADED
    assert heartbeat.last_reason == "read_error=ZeroDivisionError"
    assert heartbeat.published == 4

    broken[0] = False
    await clock.advance(1.0)
    assert heartbeat.last_status is Status.OK

    warnings = [r for r in records(caplog) if r.levelno == logging.WARNING]
    infos = [r for r in records(caplog) if r.levelno == logging.INFO]
    assert sum("cannot read service" in r.getMessage() for r in warnings) == 1
    assert "ZeroDivisionError" in warnings[0].getMessage()
    assert sum("can be read again" in r.getMessage() for r in infos) == 1


# -- trimming ------------------------------------------------------------------


async def test_heartbeat_trims_approximately_by_default(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis
) -> None:
    """XADD is asked for approximate trimming to 1000 entries by default."""
    attach(Quiet(flaky))
    await clock.settle()

    _, kwargs = flaky.calls[0]
    assert kwargs == {"maxlen": 1000, "approximate": True}


async def test_heartbeat_trims_exactly_when_asked(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """exact_trim=True keeps exactly maxlen entries."""
    attach(Quiet(fake_redis), maxlen=5, exact_trim=True)

    await clock.advance(9.0)

    entries = await read_entries(fake_redis)
    assert [e["seq"] for e in entries] == ["5", "6", "7", "8", "9"]


# -- attaching ----------------------------------------------------------------


def test_attach_heartbeat_needs_a_running_loop() -> None:
    """Attaching outside a running loop says to call it from async code."""
    client = fakeredis.aioredis.FakeRedis()

    with pytest.raises(AttachError, match="needs a running event loop"):
        attach_heartbeat(Quiet(client))


async def test_attach_heartbeat_needs_a_redis_client() -> None:
    """A service without a redis attribute and no redis= is refused."""

    class NoRedis:
        def __init__(self) -> None:
            self.active_positions: dict[str, float] = {}

    with pytest.raises(AttachError, match=r"no 'redis' attribute.*Pass redis="):
        attach_heartbeat(NoRedis())


async def test_attach_heartbeat_refuses_a_blocking_client() -> None:
    """A synchronous redis client is refused: it would block the loop."""
    blocking = redis.Redis(host="127.0.0.1", port=1)

    with pytest.raises(AttachError, match=r"asyncio client.*redis\.asyncio"):
        attach_heartbeat(Quiet(blocking))


@pytest.mark.parametrize(
    "make_client",
    [
        lambda: redis.asyncio.Redis(host="127.0.0.1", port=1),
        lambda: redis.asyncio.from_url("rediss://127.0.0.1:1/0"),
        lambda: redis.asyncio.Redis(unix_socket_path="/nonexistent/redis.sock"),
        lambda: redis.asyncio.sentinel.Sentinel([("127.0.0.1", 1)]).master_for(
            "exit-brain"
        ),
    ],
    ids=["plain", "tls", "unix-socket", "sentinel"],
)
async def test_attach_heartbeat_accepts_any_asyncio_client(
    attach: Attach, make_client: Callable[[], Any]
) -> None:
    """Plain, TLS, unix-socket and Sentinel clients are all accepted."""
    client = make_client()

    heartbeat = attach(Quiet(client))

    assert heartbeat.state is HeartbeatState.RUNNING


async def test_attach_heartbeat_refuses_an_unreadable_service(
    fake_redis: Any,
) -> None:
    """A service with no active_positions needs positions=, and says so."""

    class Anonymous:
        redis = fake_redis

    with pytest.raises(AttachError, match=r"no 'active_positions'.*positions="):
        attach_heartbeat(Anonymous())


@pytest.mark.parametrize(
    "positions",
    ["missing_attribute", lambda service: "many", lambda service: -1, 42],
)
async def test_attach_heartbeat_refuses_a_bad_positions_counter(
    fake_redis: Any, positions: Any
) -> None:
    """A counter that cannot give a whole number fails at attach time."""
    with pytest.raises(AttachError, match="positions"):
        attach_heartbeat(Quiet(fake_redis), positions=positions)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"interval_s": 0}, "interval_s must be a positive number"),
        ({"interval_s": -1.0}, "interval_s must be a positive number"),
        ({"interval_s": "1"}, "interval_s must be a number of seconds"),
        ({"interval_s": 90_000}, r"interval_s must be at most 86400 seconds"),
        ({"maxlen": 0}, "maxlen must be a whole number"),
        ({"maxlen": 10.5}, "maxlen must be a whole number"),
        ({"timeout_s": 1.0}, "timeout_s must be shorter than interval_s"),
        ({"timeout_s": 2.0}, "timeout_s must be shorter than interval_s"),
        ({"timeout_s": 0}, "timeout_s must be a positive number"),
        ({"stream": ""}, "stream must be a non-empty key name"),
        ({"max_cycle_ms": -5}, "max_cycle_ms must be a positive number"),
        ({"decision_timeout_s": 0}, "decision_timeout_s must be a positive"),
        ({"stall_after_s": -1}, "stall_after_s must be a positive number"),
        ({"max_loop_lag_ms": -1}, "max_loop_lag_ms must be a positive number"),
        ({"max_consecutive_errors": 0}, "max_consecutive_errors must be a whole"),
        ({"service_name": "x" * 1001}, "service_name must be text of at most"),
        ({"instance": 42}, "instance must be text of at most"),
    ],
)
async def test_attach_heartbeat_refuses_bad_options(
    fake_redis: Any, options: dict[str, Any], message: str
) -> None:
    """A bad option is a ConfigError (a ValueError) naming it, and starts nothing."""
    tasks_before = asyncio.all_tasks()

    with pytest.raises(ConfigError, match=message) as caught:
        attach_heartbeat(Quiet(fake_redis), **options)

    assert isinstance(caught.value, ValueError)
    assert asyncio.all_tasks() == tasks_before


async def test_attach_heartbeat_refuses_a_second_heartbeat(
    attach: Attach, fake_redis: Any
) -> None:
    """Two heartbeats for one service and stream are refused; another stream is fine."""
    service = Quiet(fake_redis)
    attach(service)

    with pytest.raises(AlreadyAttachedError, match="already publishes"):
        attach(service)
    other = attach(service, stream="quantum:stream:other.heartbeat")

    assert other.state is HeartbeatState.RUNNING


async def test_attach_heartbeat_again_after_stop(
    attach: Attach, fake_redis: Any
) -> None:
    """Once stopped, the same service and stream may be attached again."""
    service = Quiet(fake_redis)
    first = attach(service)
    await first.stop()

    second = attach(service)

    assert second.state is HeartbeatState.RUNNING


# -- lifecycle -----------------------------------------------------------------


async def test_heartbeat_state_goes_created_running_stopped(
    clock: ManualClock, fake_redis: Any
) -> None:
    """A handle is created, then running once started, then stopped."""
    heartbeat = Heartbeat(Quiet(fake_redis), clock=clock)
    assert heartbeat.state is HeartbeatState.CREATED

    heartbeat.start()
    assert heartbeat.state is HeartbeatState.RUNNING

    await heartbeat.stop()
    assert heartbeat.state is HeartbeatState.STOPPED


async def test_heartbeat_stop_before_start_publishes_nothing(
    clock: ManualClock, fake_redis: Any
) -> None:
    """Stopping a handle that never started publishes no STOPPED entry."""
    heartbeat = Heartbeat(Quiet(fake_redis), clock=clock)

    await heartbeat.stop()

    assert heartbeat.state is HeartbeatState.STOPPED
    assert await fake_redis.xlen(DEFAULT_STREAM) == 0


async def test_heartbeat_cannot_start_twice(attach: Attach, fake_redis: Any) -> None:
    """Starting a running handle again is refused."""
    heartbeat = attach(Quiet(fake_redis))

    with pytest.raises(AttachError, match="is running and cannot start again"):
        heartbeat.start()


async def test_heartbeat_cannot_start_after_stop(
    clock: ManualClock, fake_redis: Any
) -> None:
    """A stopped handle, even one never started, refuses to start."""
    heartbeat = Heartbeat(Quiet(fake_redis), clock=clock)
    await heartbeat.stop()

    with pytest.raises(AttachError, match="is stopped and cannot start again"):
        heartbeat.start()


async def test_heartbeat_stop_is_idempotent_with_one_stopped_entry(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """Stopping twice, or from two tasks at once, publishes STOPPED once."""
    heartbeat = attach(Quiet(fake_redis))
    await clock.advance(1.0)

    await asyncio.gather(heartbeat.stop(), heartbeat.stop())
    await heartbeat.stop()
    await clock.advance(5.0)

    statuses = [e["status"] for e in await read_entries(fake_redis)]
    assert statuses == ["OK", "OK", "STOPPED"]
    assert heartbeat.state is HeartbeatState.STOPPED
    assert heartbeat.published == 3


async def test_heartbeat_async_with_stops_on_exit(
    clock: ManualClock, fake_redis: Any
) -> None:
    """``async with`` starts a created handle and stops it on exit."""
    async with Heartbeat(Quiet(fake_redis), clock=clock) as heartbeat:
        assert heartbeat.state is HeartbeatState.RUNNING
        await clock.advance(1.0)

    assert heartbeat.state is HeartbeatState.STOPPED
    statuses = [e["status"] for e in await read_entries(fake_redis)]
    assert statuses == ["OK", "OK", "STOPPED"]


async def test_attach_heartbeat_works_with_async_with(
    clock: ManualClock, fake_redis: Any
) -> None:
    """The handle attach_heartbeat returns is an async context manager too."""
    async with attach_heartbeat(Quiet(fake_redis), clock=clock) as heartbeat:
        await clock.settle()

    assert heartbeat.state is HeartbeatState.STOPPED
    assert heartbeat.published == 2


async def test_heartbeat_stop_with_hanging_redis_is_bounded(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis, caplog: Any
) -> None:
    """A final STOPPED publish that hangs gives up after the publish timeout."""
    heartbeat = attach(Quiet(flaky), timeout_s=0.5)
    await clock.settle()
    flaky.mode = "hang"

    stopping = asyncio.ensure_future(heartbeat.stop())
    await clock.advance(0.6)

    assert stopping.done()
    assert heartbeat.state is HeartbeatState.STOPPED
    assert heartbeat.failed == 1
    assert any("STOPPED entry not published" in r.getMessage() for r in records(caplog))


async def test_heartbeat_stop_counts_the_publish_it_interrupted(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis
) -> None:
    """A beat whose publish was in flight when stopped is still counted."""
    original = flaky.xadd

    async def slow_xadd(name: Any, fields: Any, **kwargs: Any) -> Any:
        await clock.sleep(0.5)
        return await original(name, fields, **kwargs)

    flaky.xadd = slow_xadd  # type: ignore[method-assign]
    heartbeat = attach(Quiet(flaky))
    await clock.advance(1.2)

    stopping = asyncio.ensure_future(heartbeat.stop())
    await clock.advance(2.0)
    await stopping

    assert await flaky.xlen(DEFAULT_STREAM) == 3
    assert heartbeat.published == 3
    assert heartbeat.failed == 0


# -- Redis trouble ---------------------------------------------------------------


async def test_heartbeat_outage_logs_first_failure_and_recovery_only(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis, caplog: Any
) -> None:
    """An outage logs one WARNING with the error type and one INFO recovery."""
    heartbeat = attach(Quiet(flaky))
    await clock.settle()
    caplog.clear()

    flaky.mode = "error"
    await clock.advance(10.0)
    assert heartbeat.failed == 10
    flaky.mode = "ok"
    await clock.advance(1.0)

    logged = records(caplog)
    assert [r.levelno for r in logged] == [logging.WARNING, logging.INFO]
    assert "ConnectionError" in logged[0].getMessage()
    assert "after_s=10.0" in logged[1].getMessage()
    assert "missed_beats=10" in logged[1].getMessage()
    assert heartbeat.published == 2


async def test_heartbeat_redis_error_never_reaches_the_service(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis
) -> None:
    """The service's cycles go on while every publish fails."""
    flaky.mode = "error"
    service = ExitBrain(flaky)
    heartbeat = attach(service)

    for _ in range(5):
        await service.process_cycle()
        await clock.advance(1.0)

    assert heartbeat.failed == 6
    assert heartbeat.published == 0
    assert heartbeat.state is HeartbeatState.RUNNING


async def test_heartbeat_publish_times_out(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis, caplog: Any
) -> None:
    """A publish that hangs counts as failed after timeout_s, not later."""
    flaky.mode = "hang"
    heartbeat = attach(Quiet(flaky), timeout_s=0.3)

    await clock.advance(0.2)
    assert heartbeat.failed == 0
    await clock.advance(0.2)

    assert heartbeat.failed == 1
    assert "no reply within 0.3s" in records(caplog)[-1].getMessage()


async def test_heartbeat_default_timeout_is_most_of_the_interval(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis
) -> None:
    """Without timeout_s, a hung publish fails after 80% of the interval."""
    flaky.mode = "hang"
    heartbeat = attach(Quiet(flaky), interval_s=2.0)

    await clock.advance(1.55)
    assert heartbeat.failed == 0
    await clock.advance(0.1)

    assert heartbeat.failed == 1


async def test_heartbeat_keeps_at_most_one_publish_in_flight(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis
) -> None:
    """A publish that ignores its timeout is never joined by a second one."""
    flaky.mode = "stubborn"
    heartbeat = attach(Quiet(flaky))

    await clock.advance(5.0)

    assert flaky.most_in_flight == 1
    assert len(flaky.calls) == 1
    assert heartbeat.failed == 6

    flaky.release.set()
    flaky.mode = "ok"
    await clock.advance(1.0)
    assert heartbeat.published == 1


async def test_heartbeat_refuses_a_reply_that_is_not_an_entry_id(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis
) -> None:
    """A reply out of step with XADD counts as a failure, not a success."""
    flaky.mode = "wrong"
    heartbeat = attach(Quiet(flaky))
    await clock.settle()

    assert heartbeat.failed == 1
    assert heartbeat.published == 0


async def test_heartbeat_survives_a_publish_cancelled_elsewhere(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis
) -> None:
    """A command cancelled by something else is a failed beat, not the end."""
    heartbeat = attach(Quiet(flaky))
    await clock.settle()

    flaky.mode = "cancelled"
    await clock.advance(2.0)
    flaky.mode = "ok"
    await clock.advance(1.0)

    assert heartbeat.failed == 2
    assert heartbeat.published == 2
    assert heartbeat.state is HeartbeatState.RUNNING


async def test_heartbeat_task_cancelled_without_stop_is_logged(
    attach: Attach, clock: ManualClock, fake_redis: Any, caplog: Any
) -> None:
    """A publisher cancelled by someone else says so and frees the service."""
    service = Quiet(fake_redis)
    heartbeat = attach(service)
    await clock.settle()
    task = next(t for t in asyncio.all_tasks() if t.get_name().startswith("exit_"))

    task.cancel()
    await clock.settle()

    [warning] = [r for r in records(caplog) if r.levelno == logging.WARNING]
    assert "cancelled without stop()" in warning.getMessage()
    assert heartbeat.state is HeartbeatState.STOPPED
    assert attach(service).state is HeartbeatState.RUNNING


async def test_heartbeat_logs_a_task_that_dies(
    attach: Attach, clock: ManualClock, fake_redis: Any, caplog: Any
) -> None:
    """A publisher task killed by a bug is logged with its traceback."""
    service = Quiet(fake_redis)
    heartbeat = attach(service)
    await clock.settle()

    def broken(lag_ms: float, status: Status | None = None) -> Any:
        raise RuntimeError("bug in compose")

    heartbeat._compose = broken  # type: ignore[method-assign]
    await clock.advance(1.0)

    [died] = [r for r in records(caplog) if r.levelno == logging.ERROR]
    assert "heartbeat task died" in died.getMessage()
    assert died.exc_info is not None
    assert heartbeat.state is HeartbeatState.STOPPED
    assert attach(service).state is HeartbeatState.RUNNING


async def test_heartbeat_repr_and_counts(
    attach: Attach, clock: ManualClock, fake_redis: Any
) -> None:
    """The handle tells its counts and last status."""
    heartbeat = attach(Quiet(fake_redis), service_name="brain")
    assert heartbeat.last_status is None

    await clock.advance(2.0)

    assert heartbeat.published == 3
    assert heartbeat.failed == 0
    assert heartbeat.last_status is Status.OK
    assert heartbeat.last_entry is not None
    assert heartbeat.last_entry.seq == 2
    assert repr(heartbeat) == (
        f"<Heartbeat service='brain' stream={DEFAULT_STREAM!r} state=running "
        f"published=3 failed=0>"
    )


async def test_heartbeat_keeps_a_spike_from_an_outage_for_the_next_entry(
    attach: Attach, clock: ManualClock, flaky: FlakyRedis
) -> None:
    """A slow cycle during failed publishes shows in the first published entry."""
    service = ExitBrain(flaky)
    heartbeat = attach(service)
    await clock.advance(1.5)

    flaky.mode = "error"
    cycle_module._record_for(service).report(900.0)
    await clock.advance(1.0)
    cycle_module._record_for(service).report(10.0)
    await clock.advance(1.0)
    flaky.mode = "ok"
    await clock.advance(1.0)

    published = [fields for fields, _ in flaky.calls][-1]
    assert heartbeat.failed == 2
    assert float(published["max_cycle_ms"]) == 900.0
    assert published["status"] == "DEGRADED"


async def test_heartbeat_dates_a_cycle_by_when_it_finished(
    attach: Attach,
    clock: ManualClock,
    fake_redis: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stall rule counts from the cycle's own end, not the beat that saw it."""
    monkeypatch.setattr(cycle_module, "_wall_clock", clock.time)
    service = ExitBrain(fake_redis)
    heartbeat = attach(service, stall_after_s=5.0)
    await clock.advance(0.2)
    await service.process_cycle()

    await clock.advance(5.0)
    assert heartbeat.last_status is Status.OK
    await clock.advance(1.0)

    assert heartbeat.last_status is Status.DEGRADED
    assert heartbeat.last_reason == "no_cycle_s=5.8>5"


async def test_heartbeat_dating_ignores_a_wall_clock_step(
    attach: Attach,
    clock: ManualClock,
    fake_redis: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wall clock stepped far forward moves a cycle back one beat at most."""
    monkeypatch.setattr(cycle_module, "_wall_clock", clock.time)
    service = ExitBrain(fake_redis)
    heartbeat = attach(service, stall_after_s=5.0)
    await clock.advance(3.5)
    await service.process_cycle()
    clock.step_wall(3600.0)

    await clock.advance(4.5)

    assert heartbeat.last_status is Status.OK
