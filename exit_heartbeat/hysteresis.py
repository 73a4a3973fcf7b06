"""Hysteresis: turning a verdict per check into confirmed transitions.

One late beat must not page anyone, and one good beat in a bad spell must not
call off an alarm. A `Hysteresis` per watched instance confirms a change of
verdict only once it has held for enough checks in a row, and reports the
confirmed change as a `Transition`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from exit_heartbeat.verdict import InstanceReport, Verdict

__all__ = ["Hysteresis", "Transition", "TransitionListener"]


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


class Hysteresis:
    """Confirms the changes of verdict of one subject, check after check.

    A failure is confirmed after ``alert_after`` non-OK checks in a row (while
    in trouble, a change to another failure needs as many checks of that
    verdict); a recovery after ``recover_after`` OK checks in a row. A clean
    stop, the first sight of a healthy instance, a restart after a clean stop
    and Redis answering again are confirmed at once.
    """

    __slots__ = (
        "_alert_after",
        "_recover_after",
        "confirmed",
        "run_count",
        "run_started_at",
        "run_verdict",
        "trouble_reason",
        "trouble_since",
    )

    def __init__(self, alert_after: int, recover_after: int) -> None:
        """Start with no verdict confirmed.

        Args:
            alert_after: Checks in a row that confirm a failure.
            recover_after: OK checks in a row that confirm a recovery.
        """
        self._alert_after = alert_after
        self._recover_after = recover_after
        self.confirmed: Verdict | None = None
        self.run_verdict: Verdict | None = None
        self.run_count = 0
        self.run_started_at = 0.0
        self.trouble_since: float | None = None
        self.trouble_reason = ""

    def _needed(self, verdict: Verdict) -> int:
        confirmed = self.confirmed
        if verdict is Verdict.STOPPED:
            return 1
        if verdict is Verdict.OK:
            if confirmed in (None, Verdict.STOPPED, Verdict.UNREACHABLE):
                return 1
            return self._recover_after
        return self._alert_after

    def update(self, report: InstanceReport, at: float) -> Transition | None:
        """Take one check's report into account.

        Args:
            report: The subject's report of this check.
            at: Unix time of the check.

        Returns:
            The transition this check confirmed, or ``None``. Seeing a
            healthy instance for the first time confirms OK silently.
        """
        verdict = report.verdict
        if verdict is self.confirmed:
            self.run_verdict = None
            self.run_count = 0
            if verdict.is_failure:
                self.trouble_reason = report.reason
            return None

        run = self.run_verdict
        in_trouble = self.confirmed is not None and self.confirmed.is_failure
        # Out of trouble, any failure continues a run of failures; in trouble,
        # only the same verdict does.
        continues = run is verdict or (
            run is not None and run.is_failure and verdict.is_failure and not in_trouble
        )
        if continues:
            self.run_count += 1
        else:
            self.run_verdict = verdict
            self.run_count = 1
            self.run_started_at = at
        if self.run_count < self._needed(verdict):
            return None

        previous = self.confirmed
        self.confirmed = verdict
        self.run_verdict = None
        self.run_count = 0
        trouble_s: float | None = None
        reason = report.reason
        if verdict.is_failure:
            if not in_trouble:
                self.trouble_since = self.run_started_at
            self.trouble_reason = report.reason
        elif in_trouble:
            since = self.trouble_since
            trouble_s = max(0.0, self.run_started_at - (at if since is None else since))
            reason = self.trouble_reason
            self.trouble_since = None
        if previous is None and verdict is Verdict.OK:
            return None

        return Transition(
            report.stream,
            report.instance,
            previous,
            verdict,
            reason,
            report.age_s,
            at,
            trouble_s,
            report,
        )
