"""The heartbeat publisher: `attach_heartbeat` and the `Heartbeat` handle.

A heartbeat is one background task per service and stream. On a fixed-rate
schedule it reads the service, applies the health rules and XADDs one entry.
Whatever Redis does, the task never raises into the service and never blocks
its loop: each publish is bounded by a timeout shorter than the interval, at
most one publish is in flight, and failures are counted and logged once per
outage rather than once per beat.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
from types import TracebackType
from typing import Any

from exit_heartbeat import cycle
from exit_heartbeat.clock import Clock, LoopClock
from exit_heartbeat.entry import (
    _MAX_INTERVAL_S,
    _MAX_TEXT,
    HeartbeatEntry,
    encode_entry,
)
from exit_heartbeat.errors import AlreadyAttachedError, AttachError, ConfigError
from exit_heartbeat.health import Health, HealthPolicy, HealthSnapshot, evaluate
from exit_heartbeat.keys import DEFAULT_STREAM
from exit_heartbeat.lifecycle import Lifecycle
from exit_heartbeat.probe import Counter, ServiceProbe, ServiceReading
from exit_heartbeat.status import Status
from exit_heartbeat.writer import StreamWriter, check_client, error_kind

__all__ = ["Heartbeat", "HeartbeatState", "attach_heartbeat"]

logger = logging.getLogger(__name__)

# Heartbeats that are running, by (service id, stream): a second one for the
# same pair would interleave two sequences in one stream and is refused.
_running: dict[tuple[int, str], Heartbeat] = {}

# Strong references to the publisher tasks, so the loop cannot lose one to
# garbage collection while it runs.
_tasks: set[asyncio.Task[None]] = set()

# A degraded service is logged as recovered only after this many OK beats in a
# row, so that one good beat amid bad ones does not read as a recovery.
_RECOVERY_BEATS = 3

# A publish may use this share of the interval at most, leaving the rest of
# the slot for the loop to catch up before the next beat is due.
_DEFAULT_TIMEOUT_SHARE = 0.8


#: Where a `Heartbeat` is in its life; the same states for every long-lived object.
HeartbeatState = Lifecycle


def _number_option(name: str, value: Any, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of {unit}, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of {unit}, got {value!r}")
    return float(value)


class Heartbeat:
    """Publishes a service's heartbeat to a Redis stream until stopped.

    Create one with `attach_heartbeat`, which also starts it. The handle tells
    how the publishing goes and stops it; ``async with`` stops it on exit.
    Entry fields are described in `exit_heartbeat.entry.HeartbeatEntry`.
    """

    def __init__(
        self,
        service: object,
        redis: Any = None,
        *,
        stream: str = DEFAULT_STREAM,
        interval_s: float = 1.0,
        maxlen: int = 1000,
        exact_trim: bool = False,
        timeout_s: float | None = None,
        positions: Counter | None = None,
        pending_exits: Counter | None = None,
        service_name: str | None = None,
        instance: str | None = None,
        max_cycle_ms: float = 500.0,
        decision_timeout_s: float = 10.0,
        stall_after_s: float = 10.0,
        max_consecutive_errors: int = 3,
        max_loop_lag_ms: float = 250.0,
        clock: Clock | None = None,
        tracks_cycles: bool | None = None,
    ) -> None:
        """Check every option and the service; start nothing yet.

        The arguments are those of `attach_heartbeat`, which documents them,
        and ``tracks_cycles``: whether the service reports when its cycles
        finish (found out from its decorated methods when ``None``).

        Raises:
            ConfigError: An option is out of range.
            AttachError: The service or the Redis client cannot be used.
        """
        self._interval_s = _number_option("interval_s", interval_s, "seconds")
        if self._interval_s > _MAX_INTERVAL_S:
            # Readers refuse entries that claim a longer interval than this.
            raise ConfigError(
                f"interval_s must be at most {_MAX_INTERVAL_S:g} seconds (a day), "
                f"got {interval_s!r}"
            )
        if timeout_s is None:
            timeout_s = self._interval_s * _DEFAULT_TIMEOUT_SHARE
        self._timeout_s = _number_option("timeout_s", timeout_s, "seconds")
        if self._timeout_s >= self._interval_s:
            raise ConfigError(
                f"timeout_s must be shorter than interval_s ({self._interval_s:g}s) "
                f"so that at most one publish is in flight, got {timeout_s!r}"
            )
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
            raise ConfigError(
                f"maxlen must be a whole number of entries, 1 or more, got {maxlen!r}"
            )
        if not isinstance(stream, str) or not stream:
            raise ConfigError(f"stream must be a non-empty key name, got {stream!r}")
        for option, text in (("service_name", service_name), ("instance", instance)):
            # A longer name would be published, then refused by every reader.
            if text is not None and (
                not isinstance(text, str) or len(text) > _MAX_TEXT
            ):
                raise ConfigError(
                    f"{option} must be text of at most {_MAX_TEXT} characters, "
                    f"got {text!r:.60}"
                )

        self._service = service
        redis = getattr(service, "redis", None) if redis is None else redis
        check_client(redis, service)
        self._probe = ServiceProbe(service, positions, pending_exits, tracks_cycles)
        self._policy = HealthPolicy(
            max_cycle_ms=max_cycle_ms,
            decision_timeout_s=decision_timeout_s,
            stall_after_s=stall_after_s,
            max_consecutive_errors=max_consecutive_errors,
            max_loop_lag_ms=max_loop_lag_ms,
        )

        self._stream = stream
        self._writer = StreamWriter(
            redis, stream, maxlen, approximate=not exact_trim, timeout_s=self._timeout_s
        )
        self._service_name = service_name or type(service).__name__
        self._instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self._clock = clock

        self._state = HeartbeatState.CREATED
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._seq = 0
        self._published = 0
        self._failed = 0
        self._skipped = 0
        self._last_health: Health | None = None
        self._last_entry: HeartbeatEntry | None = None

        # Change tracking, on the monotonic clock, set properly by start().
        self._attached_at = 0.0
        self._composed_at = 0.0
        self._seen_cycles = -1
        self._seen_cycle_ts: float | None = None
        self._seen_decision_ts: float | None = None
        self._last_cycle_at: float | None = None
        self._last_decision_at: float | None = None

        # Transition logging state.
        self._failing_since: float | None = None
        self._failed_in_outage = 0
        self._degraded_since: float | None = None
        self._logged_rules: tuple[str, ...] = ()
        self._ok_streak = 0
        self._ok_since = 0.0
        # The slowest cycle not yet seen in a published entry: kept across
        # failed publishes so a spike during an outage is not forgotten.
        self._unpublished_peak_ms = 0.0
        self._read_error: str | None = None

    # -- what the handle tells -------------------------------------------

    @property
    def state(self) -> HeartbeatState:
        """Created, running or stopped."""
        return self._state

    @property
    def stream(self) -> str:
        """The stream this heartbeat publishes to."""
        return self._stream

    @property
    def interval_s(self) -> float:
        """Seconds between two beats."""
        return self._interval_s

    @property
    def published(self) -> int:
        """Entries Redis accepted."""
        return self._published

    @property
    def failed(self) -> int:
        """Beats that could not be published (error, timeout, or busy)."""
        return self._failed

    @property
    def skipped(self) -> int:
        """Schedule slots passed over because the loop woke up too late."""
        return self._skipped

    @property
    def last_status(self) -> Status | None:
        """Status of the last beat, ``None`` before the first."""
        return None if self._last_health is None else self._last_health.status

    @property
    def last_reason(self) -> str:
        """Reason of the last beat's status, empty when OK."""
        return "" if self._last_health is None else self._last_health.reason

    @property
    def last_entry(self) -> HeartbeatEntry | None:
        """The last entry composed, whether or not it was published."""
        return self._last_entry

    def __repr__(self) -> str:
        return (
            f"<Heartbeat service={self._service_name!r} stream={self._stream!r} "
            f"state={self._state.value} published={self._published} "
            f"failed={self._failed}>"
        )

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start publishing; must be called from a running event loop.

        Raises:
            AttachError: No loop is running, this handle was started before,
                or another heartbeat publishes for the service to the stream.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise AttachError(
                "attach_heartbeat() needs a running event loop: call it from "
                "async code, such as the service's async start() method."
            ) from None
        if self._state is not HeartbeatState.CREATED:
            raise AttachError(
                f"this heartbeat is {self._state} and cannot start again; "
                f"call attach_heartbeat() for a new one"
            )
        key = (id(self._service), self._stream)
        if key in _running:
            raise AlreadyAttachedError(
                f"a heartbeat already publishes for this {self._service_name} to "
                f"{self._stream!r}; stop it first, or pass another stream="
            )

        if self._clock is None:
            self._clock = LoopClock(loop)
        reading = self._probe.read(take_peak=False)
        self._attached_at = self._clock.monotonic()
        self._composed_at = self._attached_at
        self._seen_cycles = reading.cycles
        self._seen_cycle_ts = reading.last_cycle_ts
        self._seen_decision_ts = reading.last_decision_ts

        _running[key] = self
        self._state = HeartbeatState.RUNNING
        self._task = loop.create_task(
            self._run(), name=f"exit_heartbeat:{self._service_name}:{self._stream}"
        )
        _tasks.add(self._task)
        self._task.add_done_callback(self._task_done)
        logger.info(
            "heartbeat started service=%s stream=%s interval_s=%g",
            self._service_name,
            self._stream,
            self._interval_s,
        )

    async def stop(self) -> None:
        """Stop publishing and publish one final ``STOPPED`` entry.

        Safe to call more than once and from several tasks at a time; every
        call returns once the heartbeat has stopped. The final publish is
        bounded by the publish timeout.
        """
        if self._state is HeartbeatState.CREATED:
            self._state = HeartbeatState.STOPPED
            return
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
        self._release()

        if self._state is HeartbeatState.RUNNING:
            self._state = HeartbeatState.STOPPED
            await self._publish_final()
            logger.info(
                "heartbeat stopped service=%s stream=%s published=%d failed=%d",
                self._service_name,
                self._stream,
                self._published,
                self._failed,
            )

    async def __aenter__(self) -> Heartbeat:
        if self._state is HeartbeatState.CREATED:
            self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _release(self) -> None:
        key = (id(self._service), self._stream)
        if _running.get(key) is self:
            del _running[key]

    def _task_done(self, task: asyncio.Task[None]) -> None:
        _tasks.discard(task)
        if task.cancelled():
            if self._stopping is None:
                # Cancelled by someone else, often a shutdown that cancels
                # every task: no STOPPED entry went out, so a watchdog will
                # see a crash. Say so, and free the service for a new attach.
                self._release()
                self._state = HeartbeatState.STOPPED
                logger.warning(
                    "heartbeat task cancelled without stop() service=%s "
                    "stream=%s: no STOPPED entry was published",
                    self._service_name,
                    self._stream,
                )
            return
        error = task.exception()
        if error is not None:
            # The loop catches everything a beat can raise, so this is a bug;
            # say so loudly instead of letting asyncio drop it on the floor.
            self._release()
            self._state = HeartbeatState.STOPPED
            logger.error(
                "heartbeat task died service=%s stream=%s",
                self._service_name,
                self._stream,
                exc_info=error,
            )

    # -- the schedule ---------------------------------------------------------

    async def _run(self) -> None:
        clock = self._clock
        assert clock is not None
        interval_s = self._interval_s
        start = clock.monotonic()
        slot = 0

        while True:
            due = start + slot * interval_s
            delay_s = due - clock.monotonic()
            if delay_s > 0:
                await clock.sleep(delay_s)

            # Lateness is measured against the slot slept for, so that a loop
            # blocked for whole intervals still shows up as lag.
            woke = clock.monotonic()
            lag_ms = max(0.0, (woke - due) * 1000.0)
            latest = int((woke - start) // interval_s)
            if latest > slot:
                # A blocked loop missed these slots; publishing them now
                # would be a burst of stale beats, so they are skipped.
                self._skipped += latest - slot
                slot = latest

            await self._beat(lag_ms)
            slot += 1

    async def _beat(self, lag_ms: float) -> None:
        entry = self._compose(lag_ms)
        try:
            await self._publish(entry)
        except Exception as exc:
            self._on_failure(exc)
        else:
            self._on_success()

    # -- one beat ------------------------------------------------------------

    def _compose(self, lag_ms: float, status: Status | None = None) -> HeartbeatEntry:
        clock = self._clock
        assert clock is not None
        now = clock.monotonic()

        try:
            reading = self._probe.read()
        except Exception as exc:
            reading = self._on_read_error(exc)
        else:
            if self._read_error is not None:
                logger.info("service %s can be read again", self._service_name)
                self._read_error = None

        if reading.cycles != self._seen_cycles or (
            reading.last_cycle_ts != self._seen_cycle_ts
        ):
            self._seen_cycles = reading.cycles
            self._seen_cycle_ts = reading.last_cycle_ts
            self._last_cycle_at = self._dated(now, reading.last_cycle_ts)
        if reading.last_decision_ts != self._seen_decision_ts:
            self._seen_decision_ts = reading.last_decision_ts
            self._last_decision_at = self._dated(now, reading.last_decision_ts)

        peak_ms = max(reading.peak_cycle_ms, self._unpublished_peak_ms)
        self._unpublished_peak_ms = peak_ms
        worst_ms = max(reading.loop_cycle_ms or 0.0, peak_ms)
        snapshot = HealthSnapshot(
            attached_at=self._attached_at,
            active_positions=reading.active_positions,
            loop_cycle_ms=worst_ms if reading.loop_cycle_ms is not None else None,
            last_cycle_at=self._last_cycle_at,
            last_decision_at=self._last_decision_at,
            consecutive_errors=reading.consecutive_errors,
            loop_lag_ms=lag_ms,
            tracks_cycles=self._probe.tracks_cycles,
        )
        health = evaluate(snapshot, now, self._policy)
        if self._read_error is not None:
            reasons = [f"read_error={self._read_error}", health.reason]
            health = Health(
                Status.DEGRADED,
                "; ".join(filter(None, reasons)),
                ("read", *health.rules),
            )
        if status is None:
            self._on_health(health, now)
        else:
            health = Health(status)

        entry = HeartbeatEntry(
            timestamp=clock.time(),
            status=health.status,
            reason=health.reason,
            active_positions_count=reading.active_positions,
            pending_exits=reading.pending_exits,
            last_decision_ts=reading.last_decision_ts,
            loop_cycle_ms=reading.loop_cycle_ms or 0.0,
            max_cycle_ms=peak_ms,
            last_cycle_ts=reading.last_cycle_ts,
            cycles=reading.cycles,
            errors=reading.errors,
            consecutive_errors=reading.consecutive_errors,
            loop_lag_ms=lag_ms,
            interval_s=self._interval_s,
            seq=self._seq,
            service=self._service_name,
            instance=self._instance,
        )
        self._seq += 1
        self._last_entry = entry
        self._composed_at = now
        return entry

    def _dated(self, now: float, event_ts: float | None) -> float:
        """When, on the monotonic clock, an event first seen now happened.

        The event happened since the previous beat. Its wall-clock age places
        it within that span, so the rules count from the event itself rather
        than from the beat that noticed it, and a wall-clock step can move it
        no further than the span.
        """
        if event_ts is None:
            return now
        # The same wall clock the decorators stamp their records with.
        age_s = cycle._wall_clock() - event_ts
        span_s = max(0.0, now - self._composed_at)
        return now - min(max(age_s, 0.0), span_s)

    def _on_read_error(self, exc: Exception) -> ServiceReading:
        kind = type(exc).__name__
        if self._read_error is None:
            logger.warning(
                "cannot read service %s, publishing DEGRADED: %s: %s",
                self._service_name,
                kind,
                exc,
            )
        self._read_error = kind
        last = self._last_entry
        return ServiceReading(
            active_positions=0 if last is None else last.active_positions_count,
            pending_exits=0 if last is None else last.pending_exits,
            last_decision_ts=self._seen_decision_ts,
            loop_cycle_ms=None,
            peak_cycle_ms=0.0,
            last_cycle_ts=self._seen_cycle_ts,
            cycles=self._seen_cycles,
            errors=0 if last is None else last.errors,
            consecutive_errors=0,
        )

    def _on_health(self, health: Health, now: float) -> None:
        # Logged with hysteresis: a service that hovers around a threshold
        # would otherwise log a WARNING and an INFO on every other beat.
        self._last_health = health
        if health.status is Status.DEGRADED:
            self._ok_streak = 0
            if self._degraded_since is None:
                self._degraded_since = now
            if health.rules != self._logged_rules:
                self._logged_rules = health.rules
                logger.warning(
                    "service %s is DEGRADED: %s", self._service_name, health.reason
                )
            return

        if self._degraded_since is None:
            return
        self._ok_streak += 1
        if self._ok_streak == 1:
            self._ok_since = now
        if self._ok_streak < _RECOVERY_BEATS:
            return
        logger.info(
            "service %s is OK again after %.1fs degraded",
            self._service_name,
            self._ok_since - self._degraded_since,
        )
        self._degraded_since = None
        self._logged_rules = ()
        self._ok_streak = 0

    async def _publish(self, entry: HeartbeatEntry) -> None:
        clock = self._clock
        assert clock is not None
        await self._writer.write(encode_entry(entry), clock)

    def _on_success(self) -> None:
        self._published += 1
        self._unpublished_peak_ms = 0.0
        if self._failing_since is None:
            return
        clock = self._clock
        assert clock is not None
        logger.info(
            "heartbeat publish recovered stream=%s after_s=%.1f missed_beats=%d",
            self._stream,
            clock.monotonic() - self._failing_since,
            self._failed_in_outage,
        )
        self._failing_since = None
        self._failed_in_outage = 0

    def _on_failure(self, exc: Exception) -> None:
        self._failed += 1
        self._failed_in_outage += 1
        if self._failing_since is not None:
            return
        clock = self._clock
        assert clock is not None
        self._failing_since = clock.monotonic()
        logger.warning(
            "heartbeat publish failed stream=%s error=%s: %s "
            "(retrying every beat; the recovery will be logged)",
            self._stream,
            error_kind(exc),
            exc,
        )

    async def _publish_final(self) -> None:
        clock = self._clock
        assert clock is not None
        await self._writer.drain(clock)

        # The stop cancelled the beat while its publish was in flight; the
        # publish itself went on, and may well have reached Redis.
        landed = self._writer.take_interrupted()
        if landed is True:
            self._published += 1
        elif landed is False:
            self._failed += 1

        entry = self._compose(0.0, status=Status.STOPPED)
        try:
            await self._publish(entry)
        except Exception as exc:
            self._failed += 1
            logger.warning(
                "final STOPPED entry not published stream=%s error=%s: %s",
                self._stream,
                error_kind(exc),
                exc,
            )
        else:
            self._published += 1


def attach_heartbeat(
    service: object,
    redis: Any = None,
    *,
    stream: str = DEFAULT_STREAM,
    interval_s: float = 1.0,
    maxlen: int = 1000,
    exact_trim: bool = False,
    timeout_s: float | None = None,
    positions: Counter | None = None,
    pending_exits: Counter | None = None,
    service_name: str | None = None,
    instance: str | None = None,
    max_cycle_ms: float = 500.0,
    decision_timeout_s: float = 10.0,
    stall_after_s: float = 10.0,
    max_consecutive_errors: int = 3,
    max_loop_lag_ms: float = 250.0,
    clock: Clock | None = None,
) -> Heartbeat:
    """Start publishing a heartbeat for ``service``.

    Call it from a running event loop, for example in the service's async
    ``start()``. Every option is checked here, so that a mistake raises now and
    never later in the background.

    Args:
        service: The service object to watch.
        redis: A ``redis.asyncio`` client; defaults to ``service.redis``.
        stream: The stream to XADD to.
        interval_s: Seconds between two beats.
        maxlen: Entries to keep in the stream (trimmed approximately).
        exact_trim: Trim to exactly ``maxlen`` entries, at some cost to Redis.
        timeout_s: Longest wait for one publish; shorter than ``interval_s``.
            Defaults to 80% of ``interval_s``.
        positions: How to count open positions: an attribute name or a
            function of the service. Defaults to ``len(service.active_positions)``
            (a number there is taken as is).
        pending_exits: How to count pending exits, like ``positions``.
            Defaults to ``service.pending_exits``, 0 when absent.
        service_name: Name published in each entry; defaults to the class name.
        instance: Instance published in each entry; defaults to ``host:pid``.
        max_cycle_ms: Health rule: slowest acceptable cycle.
        decision_timeout_s: Health rule: longest time without a decision
            while positions are open.
        stall_after_s: Health rule: longest time without a finished cycle.
        max_consecutive_errors: Health rule: cycles in a row that may raise.
        max_loop_lag_ms: Health rule: how late the publisher may wake up.
        clock: The clock to schedule on; the event loop's by default. Tests
            pass `exit_heartbeat.testing.ManualClock`.

    Returns:
        The running `Heartbeat`; ``await heartbeat.stop()`` ends it.

    Raises:
        ConfigError: An option is out of range (a ``ValueError``).
        AttachError: No event loop is running, the service cannot be read, the
            Redis client is unusable, or a heartbeat already publishes for this
            service to this stream.
    """
    heartbeat = Heartbeat(
        service,
        redis,
        stream=stream,
        interval_s=interval_s,
        maxlen=maxlen,
        exact_trim=exact_trim,
        timeout_s=timeout_s,
        positions=positions,
        pending_exits=pending_exits,
        service_name=service_name,
        instance=instance,
        max_cycle_ms=max_cycle_ms,
        decision_timeout_s=decision_timeout_s,
        stall_after_s=stall_after_s,
        max_consecutive_errors=max_consecutive_errors,
        max_loop_lag_ms=max_loop_lag_ms,
        clock=clock,
    )
    heartbeat.start()
    return heartbeat
