"""Verdicts: what a watchdog concludes about each instance it watches.

A verdict is the watchdog's word, not the service's: the service publishes
``OK``, ``DEGRADED`` or ``STOPPED``, and the watchdog adds what only a reader
can tell (``STALE``, ``MISSING``, ``MALFORMED``, ``UNREACHABLE``). `judge`
turns one decoded entry and its age into a verdict; `InstanceReport` carries
the outcome of one check of one instance.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable
from typing import Any

from exit_heartbeat.entry import HeartbeatEntry, encode_entry
from exit_heartbeat.status import Status

__all__ = [
    "InstanceReport",
    "Verdict",
    "exit_code",
    "judge",
    "stale_limit_s",
    "worst",
]


class Verdict(str, enum.Enum):
    """What a watchdog concludes about one instance, from best to worst.

    The members are declared in order of severity; `severity` gives the rank
    and `exit_code` the code a one-shot check returns for it, in the
    convention that Nagios, Icinga and Kubernetes exec probes understand.
    """

    OK = "OK"
    DEGRADED = "DEGRADED"
    STOPPED = "STOPPED"
    MISSING = "MISSING"
    STALE = "STALE"
    MALFORMED = "MALFORMED"
    UNREACHABLE = "UNREACHABLE"

    def __str__(self) -> str:
        return self.value

    @property
    def severity(self) -> int:
        """Rank of the verdict: 0 for OK, higher is worse."""
        return _SEVERITY[self]

    @property
    def exit_code(self) -> int:
        """0 OK, 1 DEGRADED, 2 STALE/STOPPED/MISSING, 3 MALFORMED/UNREACHABLE."""
        return _EXIT_CODES[self]

    @property
    def is_failure(self) -> bool:
        """Whether the verdict is worth an alert: not OK and not a planned stop."""
        return self not in _NOT_FAILURES


# Looked up on every instance of every check: a set built once is cheaper than
# reaching the members through the class each time.
_NOT_FAILURES = frozenset((Verdict.OK, Verdict.STOPPED))

_SEVERITY = {verdict: rank for rank, verdict in enumerate(Verdict)}

_EXIT_CODES = {
    Verdict.OK: 0,
    Verdict.DEGRADED: 1,
    Verdict.STOPPED: 2,
    Verdict.MISSING: 2,
    Verdict.STALE: 2,
    Verdict.MALFORMED: 3,
    Verdict.UNREACHABLE: 3,
}


@dataclasses.dataclass(frozen=True)
class InstanceReport:
    """The outcome of one check of one instance.

    A stream with no readable instance (missing, empty, not a stream, or whose
    newest entry names none) is reported with an empty ``instance``.

    Attributes:
        stream: The stream key.
        instance: The entry's ``instance`` field, ``""`` when unknown.
        verdict: What the watchdog concludes.
        reason: Why, in a few words; empty when OK.
        age_s: Seconds between the newest entry and the check, on the Redis
            server's clock; ``None`` when there is no entry.
        checked_at: Unix time of the check on the Redis server's clock, or
            on the watchdog's own clock when the server was not reached.
        entry_id: The stream ID of the newest entry, ``None`` when none.
        entry: The newest entry decoded, ``None`` when none or unreadable.
    """

    stream: str
    instance: str
    verdict: Verdict
    reason: str = ""
    age_s: float | None = None
    checked_at: float = 0.0
    entry_id: str | None = None
    entry: HeartbeatEntry | None = None

    @property
    def subject(self) -> tuple[str, str]:
        """``(stream, instance)``: what the report is about."""
        return (self.stream, self.instance)

    def status_line(self, with_subject: bool = False) -> str:
        """The line operators grep for: ``Status: heartbeat=0.4s ago, status=OK``.

        Args:
            with_subject: Append the stream and instance, as a watchdog does
                when it watches more than one.

        Returns:
            The line, with the reason appended when there is one.
        """
        heard = "none" if self.age_s is None else f"{self.age_s:.1f}s ago"
        line = f"Status: heartbeat={heard}, status={self.verdict.value}"
        if self.reason:
            line += f", reason={self.reason}"
        if with_subject:
            line += f", stream={self.stream}, instance={self.instance or '-'}"
        return line

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values, the entry's fields included.

        Returns:
            A new dict; ``entry`` holds the entry's fields as strings, as
            published, or ``None``.
        """
        return {
            "stream": self.stream,
            "instance": self.instance,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "age_s": None if self.age_s is None else round(self.age_s, 3),
            "checked_at": round(self.checked_at, 3),
            "entry_id": self.entry_id,
            "entry": None if self.entry is None else encode_entry(self.entry),
        }


def worst(reports: Iterable[InstanceReport]) -> Verdict:
    """The most severe verdict among ``reports``; ``MISSING`` when there are none.

    Args:
        reports: Reports of one check.

    Returns:
        The worst verdict. Nothing to report means nothing was found, which
        is ``MISSING`` rather than a reassuring ``OK``.
    """
    verdicts = [report.verdict for report in reports]
    if not verdicts:
        return Verdict.MISSING
    return max(verdicts, key=lambda verdict: verdict.severity)


def exit_code(reports: Iterable[InstanceReport]) -> int:
    """The probe exit code of a check: that of its worst verdict.

    Args:
        reports: Reports of one check.

    Returns:
        0, 1, 2 or 3, as `Verdict.exit_code` describes.
    """
    return worst(reports).exit_code


def stale_limit_s(
    entry: HeartbeatEntry, stale_after_s: float, intervals: float
) -> float:
    """How old an entry may grow before its instance is ``STALE``.

    Args:
        entry: The newest entry of the instance.
        stale_after_s: The watchdog's own limit.
        intervals: How many of the entry's own ``interval_s`` an instance
            that publishes slowly on purpose may miss.

    Returns:
        The larger of ``stale_after_s`` and ``intervals * entry.interval_s``.
    """
    return max(stale_after_s, intervals * entry.interval_s)


def judge(
    entry: HeartbeatEntry,
    age_s: float,
    stale_after_s: float = 3.0,
    stale_intervals: float = 3.0,
) -> tuple[Verdict, str]:
    """Judge an instance by its newest entry and that entry's age.

    A clean stop is final whatever its age; otherwise an entry older than its
    stale limit makes the instance ``STALE``; otherwise the status the
    instance published stands, with its reason.

    Args:
        entry: The newest entry of the instance, decoded.
        age_s: Seconds since the entry was added, on the Redis server's clock.
        stale_after_s: Age beyond which the instance is ``STALE``.
        stale_intervals: Published intervals beyond which the instance is
            ``STALE``, when that is longer than ``stale_after_s``.

    Returns:
        The verdict and its reason (empty for ``OK``).
    """
    if entry.status is Status.STOPPED:
        return Verdict.STOPPED, "stopped cleanly"

    limit_s = stale_limit_s(entry, stale_after_s, stale_intervals)
    if not math.isfinite(age_s) or age_s > limit_s:
        return Verdict.STALE, f"no heartbeat for {age_s:.1f}s (limit {limit_s:g}s)"

    if entry.status is Status.DEGRADED:
        return Verdict.DEGRADED, entry.reason or "degraded, no reason given"
    return Verdict.OK, ""
