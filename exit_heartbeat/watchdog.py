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

import asyncio
import collections
import fnmatch
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from exit_heartbeat.alert import Alerter
from exit_heartbeat.clock import Clock, LoopClock
from exit_heartbeat.errors import ConfigError
from exit_heartbeat.hysteresis import Hysteresis, Transition, TransitionListener
from exit_heartbeat.keys import DEFAULT_STREAM
from exit_heartbeat.lifecycle import Lifecycle
from exit_heartbeat.notify import SystemdNotifier
from exit_heartbeat.reader import Forgotten, ReadPass, StreamReader, UnreachableError
from exit_heartbeat.verdict import InstanceReport, Verdict, judge

__all__ = [
    "ReportListener",
    "Transition",
    "TransitionListener",
    "Watchdog",
    "WatchdogState",
    "check_streams",
    "summarize",
]

logger = logging.getLogger(__name__)


#: Where a `Watchdog` is in its life; the same states for every long-lived object.
WatchdogState = Lifecycle


#: Called with the reports of each check.
ReportListener = Callable[[Sequence[InstanceReport]], object]


# The subject under which the Redis connection itself is tracked.
_CONNECTION = ("", "")

# Verdicts whose Status lines --quiet-ok thins out: nothing to act on.
_QUIET = (Verdict.OK, Verdict.STOPPED)

# How loudly a confirmed failure is logged.
_LEVELS = {
    Verdict.DEGRADED: logging.WARNING,
    Verdict.MISSING: logging.ERROR,
    Verdict.STALE: logging.ERROR,
    Verdict.MALFORMED: logging.ERROR,
    Verdict.UNREACHABLE: logging.ERROR,
}


def _positive(name: str, value: Any, unit: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of {unit}, got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not math.isfinite(value) or not low_ok:
        rule = "zero or more" if allow_zero else "a positive number of"
        raise ConfigError(f"{name} must be {rule} {unit}, got {value!r}")
    return float(value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"{name} must be a whole number of checks, 1 or more, got {value!r}"
        )
    return value


def _stream_names(streams: Sequence[str], pattern: str | None) -> tuple[str, ...]:
    if isinstance(streams, str):
        raise ConfigError(
            f"streams must be a list of stream keys, got the string {streams!r}; "
            f"write streams=[{streams!r}]"
        )
    names = tuple(dict.fromkeys(streams))
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a stream must be a non-empty key name, got {name!r}")
    if pattern is not None and (not isinstance(pattern, str) or not pattern):
        raise ConfigError(f"pattern must be a non-empty SCAN pattern, got {pattern!r}")
    if not names and pattern is None:
        names = (DEFAULT_STREAM,)
    return names


def _reports(
    read: ReadPass, stale_after_s: float, stale_intervals: float
) -> list[InstanceReport]:
    at = read.server_time_s
    reports: list[InstanceReport] = []
    for latest in read.latest.values():
        # A server clock stepped back makes a new entry look "from the future".
        age_s = max(0.0, at - latest.id_ms / 1000.0)
        if latest.entry is None:
            reports.append(
                InstanceReport(
                    latest.stream,
                    latest.instance,
                    Verdict.MALFORMED,
                    f"entry {latest.entry_id} unreadable: {latest.error}",
                    age_s,
                    at,
                    latest.entry_id,
                )
            )
            continue
        verdict, reason = judge(latest.entry, age_s, stale_after_s, stale_intervals)
        reports.append(
            InstanceReport(
                latest.stream,
                latest.instance,
                verdict,
                reason,
                age_s,
                at,
                latest.entry_id,
                latest.entry,
            )
        )
    for stream, why in read.problems.items():
        reports.append(InstanceReport(stream, "", Verdict.MALFORMED, why, None, at))
    for stream, why in read.empty.items():
        if stream not in read.problems:
            reports.append(InstanceReport(stream, "", Verdict.MISSING, why, None, at))
    reports.sort(key=lambda report: (report.stream, report.instance))
    return reports


def _unreachable(
    subjects: Iterable[tuple[str, str]], reason: str, at: float
) -> list[InstanceReport]:
    return [
        InstanceReport(stream, instance, Verdict.UNREACHABLE, reason, None, at)
        for stream, instance in sorted(set(subjects))
    ]


def summarize(reports: Sequence[InstanceReport]) -> str:
    """One line that sums up a check, as systemd's ``STATUS=`` shows it.

    Args:
        reports: The reports of one check.

    Returns:
        For example ``"3 watched: 2 OK, 1 STALE"``.
    """
    if not reports:
        return "nothing found to watch yet"
    counts = collections.Counter(report.verdict for report in reports)
    parts = ", ".join(f"{counts[v]} {v}" for v in Verdict if counts[v])
    return f"{len(reports)} watched: {parts}"


class Watchdog:
    """Watches heartbeat streams and raises the alarm on trouble.

    Use it as ``async with Watchdog(redis, streams=[...]) as dog: await
    dog.run()`` and call `stop` from elsewhere, or call `check` on a schedule
    of your own (one call at a time). Observe it with `add_listener`
    (confirmed transitions) and `add_report_listener` (every check).

    Hysteresis: a subject whose verdict is not OK is confirmed in trouble,
    logged and alerted once it held for ``alert_after`` checks in a row, and
    confirmed recovered after ``recover_after`` OK checks in a row. A clean
    stop is confirmed at once and is logged at INFO, never alerted.
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
        notifier: SystemdNotifier | None = None,
        clock: Clock | None = None,
        server_clock: Callable[[], float] | None = None,
    ) -> None:
        """Check every option; start nothing yet.

        Args:
            redis: A ``redis.asyncio`` client. Give it a ``socket_timeout``
                longer than ``timeout_s``.
            streams: Stream keys to watch. With neither ``streams`` nor
                ``pattern``, the default heartbeat stream is watched.
            pattern: A SCAN pattern; matching streams are found at the first
                check and again every ``rescan_s``.
            interval_s: Seconds between two checks of `run`.
            stale_after_s: An instance whose newest entry is older than this
                is ``STALE``...
            stale_intervals: ...unless this many of its own published
                ``interval_s`` is longer.
            alert_after: Non-OK checks in a row before a failure is confirmed
                (logged and alerted).
            recover_after: OK checks in a row before a recovery is confirmed.
            quiet_ok_s: Log the ``Status:`` line of an OK (or cleanly stopped)
                instance once per this many seconds; 0 logs every check.
            alert_stream: A stream to XADD an entry to on each alert.
            on_alert: A shell command to run on each alert, with the details
                in ``EXIT_HEARTBEAT_*`` environment variables.
            alert_timeout_s: Longest run of ``on_alert`` and longest XADD.
            timeout_s: Longest wait for one Redis round trip.
            rescan_s: Seconds between two SCANs for ``pattern``.
            forget_after_s: An instance whose newest entry is older than this,
                and not the newest of its stream, is forgotten; this keeps
                memory bounded as services restart under new names.
            skew_warn_s: Warn once per instance whose ``timestamp`` differs
                from the server's time of its entry by more than this.
            backoff_max_s: Longest wait between two attempts while Redis is
                unreachable; the wait doubles from ``interval_s`` up to it.
            notifier: Where to send systemd notifications; none by default.
            clock: Schedules checks; the event loop's clock by default.
            server_clock: Stands in for the Redis server's ``TIME``; tests
                pass a manual clock's ``time``.

        Raises:
            ConfigError: An option is out of range or of the wrong kind, or
                the alert stream is one of the watched heartbeat streams.
        """
        self._streams = _stream_names(streams, pattern)
        self._pattern = pattern
        self._interval_s = _positive("interval_s", interval_s, "seconds")
        self._stale_after_s = _positive("stale_after_s", stale_after_s, "seconds")
        self._stale_intervals = _positive(
            "stale_intervals", stale_intervals, "intervals"
        )
        self._alert_after = _count("alert_after", alert_after)
        self._recover_after = _count("recover_after", recover_after)
        self._quiet_ok_s = _positive("quiet_ok_s", quiet_ok_s, "seconds", True)
        self._timeout_s = _positive("timeout_s", timeout_s, "seconds")
        self._skew_warn_s = _positive("skew_warn_s", skew_warn_s, "seconds")
        self._backoff_max_s = _positive("backoff_max_s", backoff_max_s, "seconds")
        self._rescan_s = _positive("rescan_s", rescan_s, "seconds")
        self._forget_after_s = _positive("forget_after_s", forget_after_s, "seconds")
        alert_timeout_s = _positive("alert_timeout_s", alert_timeout_s, "seconds")
        if alert_stream is not None:
            self._check_alert_stream(alert_stream)
        if on_alert is not None and (not isinstance(on_alert, str) or not on_alert):
            raise ConfigError(f"on_alert must be a shell command, got {on_alert!r}")

        self._redis = redis
        self._alerter = Alerter(
            redis, stream=alert_stream, command=on_alert, timeout_s=alert_timeout_s
        )
        self._notifier = notifier or SystemdNotifier(None)
        self._clock = clock
        self._server_clock = server_clock
        self._exclude = () if alert_stream is None else (alert_stream,)
        self._reader: StreamReader | None = None

        self._listeners: list[TransitionListener] = []
        self._report_listeners: list[ReportListener] = []
        self._failing_listeners: set[int] = set()
        self._tracks: dict[tuple[str, str], Hysteresis] = {}
        self._quiet_logged_s: dict[tuple[str, str], float] = {}
        self._skewed: set[tuple[str, str]] = set()
        self._failures = 0
        self._last_reports: list[InstanceReport] = []

        self._state = WatchdogState.CREATED
        self._stop_event: asyncio.Event | None = None
        self._done_event: asyncio.Event | None = None

    def _check_alert_stream(self, alert_stream: str) -> None:
        if not isinstance(alert_stream, str) or not alert_stream:
            raise ConfigError(
                f"alert_stream must be a non-empty key name, got {alert_stream!r}"
            )
        watched = alert_stream in self._streams or (
            self._pattern is not None
            and fnmatch.fnmatchcase(alert_stream, self._pattern)
        )
        if watched:
            raise ConfigError(
                f"alert_stream {alert_stream!r} is a watched heartbeat stream; "
                f"the watchdog never writes to those. Pick another key, such as "
                f"'quantum:stream:exit_brain.alerts'."
            )

    # -- observing ------------------------------------------------------------

    @property
    def state(self) -> WatchdogState:
        """Created, running or stopped."""
        return self._state

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams watched now (those found by the pattern included)."""
        if self._reader is None:
            return self._streams
        return self._reader.streams

    @property
    def last_reports(self) -> list[InstanceReport]:
        """The reports of the latest check, empty before the first."""
        return list(self._last_reports)

    @property
    def reachable(self) -> bool:
        """Whether the latest check reached Redis (``True`` before any)."""
        return self._failures == 0

    def add_listener(self, listener: TransitionListener) -> None:
        """Call ``listener(transition)`` on every confirmed transition.

        Listeners run inside the check, so keep them quick; one that raises
        is logged and skipped, never allowed to stop the watchdog.

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

    # -- one check ------------------------------------------------------------

    def _get_clock(self) -> Clock:
        if self._clock is None:
            self._clock = LoopClock(asyncio.get_running_loop())
        return self._clock

    def _get_reader(self) -> StreamReader:
        if self._reader is None:
            self._reader = StreamReader(
                self._redis,
                self._streams,
                self._pattern,
                timeout_s=self._timeout_s,
                clock=self._get_clock(),
                rescan_s=self._rescan_s,
                forget_after_s=self._forget_after_s,
                exclude=self._exclude,
                server_clock=self._server_clock,
            )
        return self._reader

    async def check(self) -> list[InstanceReport]:
        """Make one pass over every watched stream.

        Logs the ``Status:`` lines and confirmed transitions, sends alerts
        and calls the listeners. Never raises for what Redis does: an
        unreachable server gives ``UNREACHABLE`` reports.

        Returns:
            One report per instance, and one per stream that has none,
            sorted by stream and instance.
        """
        clock = self._get_clock()
        reader = self._get_reader()
        try:
            read = await reader.read()
        except UnreachableError as exc:
            reports = self._on_unreachable(exc.reason, clock.time())
        else:
            reports = self._on_read(read, clock)

        self._last_reports = reports
        for listener in self._report_listeners:
            self._call(listener, reports)
        return reports

    def _on_unreachable(self, reason: str, at: float) -> list[InstanceReport]:
        self._failures += 1
        logger.debug("redis unreachable attempt=%d error=%s", self._failures, reason)
        subjects = [key for key in self._tracks if key != _CONNECTION]
        tracked = {stream for stream, _ in subjects}
        subjects += [(s, "") for s in self.streams if s not in tracked]
        if not subjects:
            subjects = [(self._pattern or "", "")]
        reports = _unreachable(subjects, reason, at)

        report = InstanceReport("", "", Verdict.UNREACHABLE, reason, None, at)
        self._advance(_CONNECTION, report, at)
        return reports

    def _on_read(self, read: ReadPass, clock: Clock) -> list[InstanceReport]:
        self._failures = 0
        at = clock.time()
        report = InstanceReport("", "", Verdict.OK, "", None, at)
        self._advance(_CONNECTION, report, at)

        for forgotten in read.forgotten:
            self._forget(forgotten, read.server_time_s)
        for key in sorted(read.fresh):
            self._check_skew(read, key)

        reports = _reports(read, self._stale_after_s, self._stale_intervals)
        several = len(reports) > 1
        now_s = clock.monotonic()
        logging_status = logger.isEnabledFor(logging.INFO)
        tracks = self._tracks
        current: set[tuple[str, str]] = set()
        for report in reports:
            key = (report.stream, report.instance)
            current.add(key)
            if logging_status:
                self._log_status(report, key, several, now_s)
            self._advance(key, report, read.server_time_s)

        if len(tracks) > len(current) + 1:
            # A stream that now has an instance no longer needs its
            # stream-level track (MISSING, or garbage naming no instance).
            for key in [k for k in tracks if k not in current and k != _CONNECTION]:
                self._close(
                    key, "the stream has readable entries now", read.server_time_s
                )
        return reports

    def _check_skew(self, read: ReadPass, key: tuple[str, str]) -> None:
        latest = read.latest[key]
        if latest.entry is None or key in self._skewed:
            return
        skew_s = latest.entry.timestamp - latest.id_ms / 1000.0
        if abs(skew_s) > self._skew_warn_s:
            self._skewed.add(key)
            logger.warning(
                "clock skew stream=%s instance=%s publisher_ahead_s=%+.1f: ages are "
                "measured on the Redis server's clock; fix the publisher's clock",
                key[0],
                key[1] or "-",
                skew_s,
            )

    def _forget(self, forgotten: Forgotten, at: float) -> None:
        latest = forgotten.latest
        key = (latest.stream, latest.instance)
        logger.info(
            "Forgot: stream=%s instance=%s why=%s",
            latest.stream,
            latest.instance or "-",
            forgotten.why,
        )
        self._skewed.discard(key)
        if forgotten.replaced:
            self._close(key, forgotten.why, at)
        else:
            self._tracks.pop(key, None)
            self._quiet_logged_s.pop(key, None)

    def _close(self, key: tuple[str, str], why: str, at: float) -> None:
        # A subject that another took over from: if it was in trouble, the
        # trouble is over, and whoever was alerted hears of it.
        self._quiet_logged_s.pop(key, None)
        track = self._tracks.pop(key, None)
        if track is None or track.confirmed is None or not track.confirmed.is_failure:
            return
        stream, instance = key
        since = track.trouble_since if track.trouble_since is not None else at
        report = InstanceReport(stream, instance, Verdict.OK, why, None, at)
        self._emit(
            Transition(
                stream,
                instance,
                track.confirmed,
                Verdict.OK,
                why,
                None,
                at,
                max(0.0, at - since),
                report,
            )
        )

    # -- hysteresis -----------------------------------------------------------

    def _advance(self, key: tuple[str, str], report: InstanceReport, at: float) -> None:
        hysteresis = self._tracks.get(key)
        if hysteresis is None:
            hysteresis = self._tracks[key] = Hysteresis(
                self._alert_after, self._recover_after
            )
        transition = hysteresis.update(report, at)
        if transition is not None:
            self._emit(transition)

    # -- telling people -------------------------------------------------------

    def _log_status(
        self, report: InstanceReport, key: tuple[str, str], several: bool, now_s: float
    ) -> None:
        if report.verdict in _QUIET:
            if now_s - self._quiet_logged_s.get(key, -math.inf) < self._quiet_ok_s:
                return
            self._quiet_logged_s[key] = now_s
        else:
            self._quiet_logged_s.pop(key, None)

        logger.info("%s", report.status_line(several))

    def _emit(self, transition: Transition) -> None:
        _log_transition(transition)
        if transition.is_alert:
            self._alerter.send(transition)
        for listener in self._listeners:
            self._call(listener, transition)

    def _call(self, listener: Callable[[Any], object], value: object) -> None:
        try:
            listener(value)
        except Exception:
            if id(listener) not in self._failing_listeners:
                self._failing_listeners.add(id(listener))
                logger.exception("watchdog listener failed listener=%r", listener)
        else:
            self._failing_listeners.discard(id(listener))

    # -- the loop -------------------------------------------------------------

    async def run(self) -> None:
        """Check every ``interval_s`` until `stop` is called.

        Checks run on a fixed-rate schedule that skips slots missed while a
        check was slow. While Redis is unreachable the attempts back off, but
        the loop goes on ticking. With a notifier it sends ``READY=1`` after
        the first check, ``WATCHDOG=1`` on every tick when systemd expects
        pings, and ``STATUS=`` whenever the summary changes.

        Raises:
            RuntimeError: The watchdog already ran or is running.
        """
        if self._state is not WatchdogState.CREATED:
            raise RuntimeError(
                f"this watchdog is {self._state}; create a new Watchdog to run again"
            )
        self._state = WatchdogState.RUNNING
        self._stop_event = asyncio.Event()
        self._done_event = asyncio.Event()
        logger.info(
            "watching streams=%s pattern=%s interval_s=%g stale_after_s=%g "
            "alert_after=%d recover_after=%d",
            _few(self._streams),
            self._pattern or "-",
            self._interval_s,
            self._stale_after_s,
            self._alert_after,
            self._recover_after,
        )
        self._warn_if_systemd_too_quick()
        try:
            await self._loop()
        finally:
            self._state = WatchdogState.STOPPED
            self._notifier.stopping()
            await self._alerter.aclose()
            self._notifier.close()
            self._done_event.set()
            logger.info("watchdog stopped")

    def _warn_if_systemd_too_quick(self) -> None:
        limit_s = self._notifier.watchdog_interval_s
        if limit_s is not None and limit_s < 2 * self._interval_s:
            logger.warning(
                "systemd's WatchdogSec=%gs leaves no room for interval_s=%gs; "
                "set WatchdogSec to at least %gs",
                limit_s,
                self._interval_s,
                4 * self._interval_s,
            )

    async def _loop(self) -> None:
        clock = self._get_clock()
        stop = self._stop_event
        assert stop is not None
        start_s = clock.monotonic()
        next_attempt_s = start_s
        ready = False
        text = sent = ""
        broken = False

        while not stop.is_set():
            now_s = clock.monotonic()
            if now_s >= next_attempt_s:
                try:
                    reports = await self.check()
                except Exception:
                    # A bug, not Redis: say so once, keep the loop alive.
                    if not broken:
                        logger.exception("watchdog check failed")
                    broken = True
                else:
                    broken = False
                    text = self._status_text(reports)
                if self._failures:
                    backoff_s = min(
                        self._backoff_max_s,
                        self._interval_s * 2 ** min(self._failures - 1, 30),
                    )
                    # Half a tick early, so the attempt lands on a tick.
                    next_attempt_s = now_s + backoff_s - self._interval_s / 2

            if not ready:
                ready = True
                self._notifier.ready(text or None)
            elif text != sent:
                self._notifier.status(text)
            sent = text
            if not broken:
                # A loop whose checks keep failing on a bug of ours is not
                # healthy: without the ping, systemd restarts it.
                self._notifier.watchdog()

            slot = math.floor((clock.monotonic() - start_s) / self._interval_s) + 1
            await self._pause(start_s + slot * self._interval_s - clock.monotonic())

    def _status_text(self, reports: Sequence[InstanceReport]) -> str:
        if self._failures and reports:
            return f"Redis unreachable: {reports[0].reason}"
        return summarize(reports)

    async def _pause(self, delay_s: float) -> None:
        stop = self._stop_event
        assert stop is not None
        if delay_s <= 0:
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self._get_clock().sleep(delay_s))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()

    async def stop(self) -> None:
        """Stop `run` and wait, within the alert timeout, for pending alerts.

        Safe to call more than once, and before or without `run`.
        """
        if self._state is WatchdogState.CREATED:
            self._state = WatchdogState.STOPPED
            await self._alerter.aclose()
            return
        if self._stop_event is not None:
            self._stop_event.set()
        if self._done_event is not None:
            await self._done_event.wait()

    async def __aenter__(self) -> Watchdog:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _few(names: Sequence[str], shown: int = 3) -> str:
    # Thousands of stream names would make one unreadable log line.
    text = ",".join(names[:shown]) or "-"
    if len(names) > shown:
        text += f" (+{len(names) - shown} more)"
    return text


def _log_transition(transition: Transition) -> None:
    where: list[object] = []
    place = ""
    if transition.stream:
        place = " stream=%s instance=%s"
        where = [transition.stream, transition.instance or "-"]
    previous = "-" if transition.previous is None else transition.previous.value

    if transition.is_recovery:
        logger.info(
            "Recovered: status=%s was=%s after=%.1fs" + place + " reason=%s",
            transition.verdict.value,
            previous,
            transition.trouble_s or 0.0,
            *where,
            transition.reason,
        )
    elif transition.verdict.is_failure:
        heard = ""
        if transition.stream:
            age_s = transition.age_s
            heard = " heartbeat=" + ("none" if age_s is None else f"{age_s:.1f}s ago")
        logger.log(
            _LEVELS[transition.verdict],
            "Alert: status=%s was=%s%s" + place + " reason=%s",
            transition.verdict.value,
            previous,
            heard,
            *where,
            transition.reason,
        )
    else:
        logger.info(
            "Changed: status=%s was=%s" + place,
            transition.verdict.value,
            previous,
            *where,
        )


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
        One report per instance, and one per stream that has none, sorted by
        stream and instance; an unreachable server gives one ``UNREACHABLE``
        report per stream (or for the pattern).

    Raises:
        ConfigError: An option is out of range or of the wrong kind.
    """
    names = _stream_names(streams, pattern)
    stale_after_s = _positive("stale_after_s", stale_after_s, "seconds")
    stale_intervals = _positive("stale_intervals", stale_intervals, "intervals")
    timeout_s = _positive("timeout_s", timeout_s, "seconds")
    reader = StreamReader(redis, names, pattern, timeout_s=timeout_s)
    try:
        read = await reader.read()
    except UnreachableError as exc:
        subjects = [(stream, "") for stream in names] or [(pattern or "", "")]
        return _unreachable(subjects, exc.reason, time.time())
    return _reports(read, stale_after_s, stale_intervals)
