"""Benchmark 5: how long a hang takes to become the watchdog's alert.

A service runs in a thread with an event loop of its own, cycling every 20 ms
and beating every 100 ms; a watchdog in the main thread checks its stream
every 100 ms and alerts on the first bad check (``alert_after=1``). Once the
watchdog has seen the service OK, the service hangs, at a random moment
relative to the beats and checks, in one of two ways:

- its loop is blocked: a blocking call holds the thread, so no beat leaves;
  the threshold is the watchdog's ``stale_after_s``;
- its cycle is stuck while the loop stays alive: beats keep coming, and the
  publisher's stall rule turns them ``DEGRADED``; the threshold is the
  publisher's ``stall_after_s``.

The detection time runs from the hang to the watchdog's listener hearing of
the failure, both on the wall clock of this one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis.asyncio

from benchmarks.report import Section, Settings, Table, Target
from benchmarks.server import redis_server
from exit_heartbeat import attach_heartbeat, decision, timed_cycle
from exit_heartbeat.verdict import InstanceReport, Verdict
from exit_heartbeat.watchdog import Transition, Watchdog

__all__ = ["run"]

_BEAT_S = 0.1
_CHECK_S = 0.1
_CYCLE_S = 0.02
_THRESHOLD_S = 0.5
_ALERT_WAIT_S = 5.0


class _Service:
    """A service whose cycle can be made to hang."""

    def __init__(self) -> None:
        self.active_positions = {"BTCUSDT": 1}
        self.stuck: asyncio.Event | None = None
        self.hung_at: float | None = None

    @timed_cycle
    @decision
    async def process_cycle(self) -> None:
        if self.stuck is not None:
            self.hung_at = time.time()
            await self.stuck.wait()


@dataclasses.dataclass
class _Runner:
    """A service with its heartbeat, on a loop in a thread of its own."""

    port: int
    stream: str
    service: _Service = dataclasses.field(default_factory=_Service)
    loop: asyncio.AbstractEventLoop | None = None
    ready: threading.Event = dataclasses.field(default_factory=threading.Event)
    stopping: bool = False

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        client = redis.asyncio.Redis(host="127.0.0.1", port=self.port)
        heartbeat = attach_heartbeat(
            self.service,
            client,
            stream=self.stream,
            interval_s=_BEAT_S,
            stall_after_s=_THRESHOLD_S,
            decision_timeout_s=60.0,
        )
        self.ready.set()
        try:
            while not self.stopping:
                await self.service.process_cycle()
                await asyncio.sleep(_CYCLE_S)
        finally:
            await heartbeat.stop()
            await client.aclose()

    def run(self) -> None:
        asyncio.run(self._main())

    def block_loop(self, release: threading.Event) -> float:
        """Block the service's loop until ``release`` is set; return when."""
        assert self.loop is not None
        started = threading.Event()
        moment: list[float] = []

        def block() -> None:
            moment.append(time.time())
            started.set()
            release.wait()

        self.loop.call_soon_threadsafe(block)
        started.wait()
        return moment[0]

    def stick_cycle(self) -> asyncio.Event:
        """Make the next cycle hang; the returned event releases it."""
        assert self.loop is not None
        stuck = asyncio.Event()
        self.loop.call_soon_threadsafe(setattr, self.service, "stuck", stuck)
        return stuck

    def release_cycle(self, stuck: asyncio.Event) -> None:
        assert self.loop is not None
        self.service.stuck = None
        self.loop.call_soon_threadsafe(stuck.set)

    def stop(self) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(setattr, self, "stopping", True)


@contextlib.contextmanager
def _service_thread(port: int, stream: str) -> Iterator[_Runner]:
    runner = _Runner(port, stream)
    thread = threading.Thread(target=runner.run, name=f"service {stream}")
    thread.start()
    runner.ready.wait()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(timeout=10)


async def _trial(port: int, client: Any, kind: str, number: int) -> float | None:
    """One hang and its detection; the seconds it took, ``None`` if missed."""
    stream = f"bench:detection:{kind}:{number}"
    alerted: list[float] = []
    alert = asyncio.Event()
    seen_ok = asyncio.Event()

    def listen(transition: Transition) -> None:
        if transition.verdict.is_failure and not alerted:
            alerted.append(time.time())
            alert.set()

    def look(reports: Sequence[InstanceReport]) -> None:
        if any(report.verdict is Verdict.OK for report in reports):
            seen_ok.set()

    watchdog = Watchdog(
        client,
        streams=[stream],
        interval_s=_CHECK_S,
        stale_after_s=_THRESHOLD_S,
        alert_after=1,
        recover_after=1,
    )
    watchdog.add_listener(listen)
    watchdog.add_report_listener(look)
    with _service_thread(port, stream) as runner:
        watching = asyncio.create_task(watchdog.run())
        try:
            await asyncio.wait_for(seen_ok.wait(), _ALERT_WAIT_S)
            # A random phase against the beats and the checks.
            await asyncio.sleep(random.uniform(0.0, max(_BEAT_S, _CHECK_S)))
            # Only an alert that follows the hang counts: the watchdog may
            # have reported the stream MISSING before its first beat.
            alerted.clear()
            alert.clear()
            release = threading.Event()
            stuck = None
            if kind == "blocked":
                hung_at = runner.block_loop(release)
            else:
                stuck = runner.stick_cycle()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(alert.wait(), _ALERT_WAIT_S)
            release.set()
            if stuck is not None:
                runner.release_cycle(stuck)
                hung_at = runner.service.hung_at or time.time()
        finally:
            await watchdog.stop()
            await asyncio.wait({watching})
    return alerted[0] - hung_at if alerted else None


async def _measure(port: int, trials: int) -> dict[str, list[float | None]]:
    client = redis.asyncio.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        results: dict[str, list[float | None]] = {"blocked": [], "stuck": []}
        for number in range(trials):
            for kind in results:
                results[kind].append(await _trial(port, client, kind, number))
        return results
    finally:
        await client.aclose()


def run(settings: Settings) -> Section:
    """Hang a service many times each way and time the alerts."""
    began = time.perf_counter()
    trials = settings.count(20, 2)
    # Every hang is logged by the watchdog; the report says what matters.
    logging.getLogger("exit_heartbeat").setLevel(logging.CRITICAL)
    with redis_server() as server:
        results = asyncio.run(_measure(server.port, trials))

    rows = []
    targets = []
    labels = {
        "blocked": ("loop blocked", "`stale_after_s`"),
        "stuck": ("cycle stuck, loop alive", "`stall_after_s`"),
    }
    for kind, (label, threshold_name) in labels.items():
        times = [value for value in results[kind] if value is not None]
        missed = len(results[kind]) - len(times)
        if not times:
            rows.append([label, threshold_name, "0", "n/a", "n/a", "n/a", str(missed)])
            targets.append(
                Target(f"{label}: alert within one check of the threshold", "", None)
            )
            continue
        median = statistics.median(times)
        worst = max(times)
        over_checks = (worst - _THRESHOLD_S) / _CHECK_S
        rows.append(
            [
                label,
                f"{threshold_name} = {_THRESHOLD_S:g} s",
                str(len(times)),
                f"{median:.3f} ({median / _THRESHOLD_S:.2f})",
                f"{min(times):.3f}",
                f"{worst:.3f} ({worst / _THRESHOLD_S:.2f})",
                str(missed),
            ]
        )
        targets.append(
            Target(
                f"{label}: alert within one check ({_CHECK_S:g} s) of the threshold",
                f"worst {worst - _THRESHOLD_S:+.3f} s past the threshold "
                f"({over_checks:.1f} checks), median {median - _THRESHOLD_S:+.3f} s",
                worst <= _THRESHOLD_S + _CHECK_S and missed == 0,
            )
        )
    table = Table(
        f"Seconds from the hang to the alert (ratio to the threshold), "
        f"{trials} trials each",
        ["hang", "threshold", "trials", "median", "best", "worst", "no alert"],
        rows,
    )
    notes = [
        f"Beats every {_BEAT_S:g} s, checks every {_CHECK_S:g} s, "
        f"`alert_after=1`: the figures scale with these settings. With the "
        f"defaults (1 s beats and checks, `alert_after=2`) add about one more "
        f"check interval for the confirmation.",
        "A blocked loop can alert before its threshold: the threshold runs "
        "from the last entry, published up to one beat before the hang.",
        "A stuck cycle can alert up to one beat and one check past its "
        "threshold: the publisher dates the last finished cycle by its own "
        "finish time, but judges the stall rule only when it composes a beat "
        "(up to one beat after the threshold), and the watchdog reads that "
        "entry at its next check.",
    ]
    return Section(
        "Detection time",
        "Real time, real Redis: a service thread and a watchdog in one "
        "process, a fresh stream and watchdog for every trial.",
        [table],
        targets,
        notes,
        time.perf_counter() - began,
    )
