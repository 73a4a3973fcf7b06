"""Health rules: one pure function that turns a snapshot into a status.

The publisher applies `evaluate` on every beat; a watchdog can apply it to a
decoded entry as well. The function reads no clock of its own: every time in
the snapshot and ``now`` must be on one clock, whichever it is.
"""

from __future__ import annotations

import dataclasses
import math

from exit_heartbeat.errors import ConfigError
from exit_heartbeat.status import Status

__all__ = ["Health", "HealthPolicy", "HealthSnapshot", "evaluate"]


@dataclasses.dataclass(frozen=True)
class HealthPolicy:
    """Thresholds of the health rules.

    Attributes:
        max_cycle_ms: A cycle slower than this degrades the service.
        decision_timeout_s: With positions open, going this long without a
            decision degrades the service.
        stall_after_s: Going this long without a finished cycle degrades the
            service, even while the heartbeat itself keeps beating.
        max_consecutive_errors: This many cycles in a row that raised degrade
            the service.
        max_loop_lag_ms: A publisher that wakes up later than this means the
            event loop is being blocked.
    """

    max_cycle_ms: float = 500.0
    decision_timeout_s: float = 10.0
    stall_after_s: float = 10.0
    max_consecutive_errors: int = 3
    max_loop_lag_ms: float = 250.0

    def __post_init__(self) -> None:
        for name in (
            "max_cycle_ms",
            "decision_timeout_s",
            "stall_after_s",
            "max_loop_lag_ms",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(
                    f"{name} must be a number of "
                    f"{'milliseconds' if name.endswith('_ms') else 'seconds'}, "
                    f"got {value!r}"
                )
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        count = self.max_consecutive_errors
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(
                f"max_consecutive_errors must be a whole number of 1 or more, "
                f"got {count!r}"
            )


@dataclasses.dataclass(frozen=True)
class HealthSnapshot:
    """What the rules need to know about a service at one moment.

    Times are seconds on the same clock as the ``now`` given to `evaluate`.

    Attributes:
        attached_at: When watching began; stands in for the first decision
            and the first cycle until they happen, which gives a fresh start
            its grace period.
        active_positions: Open positions the service is responsible for.
        loop_cycle_ms: Slowest cycle worth judging (the last one, or the
            slowest since the previous beat), ``None`` when unknown.
        last_cycle_at: When a cycle last finished, ``None`` before the first.
        last_decision_at: When a decision was last made, ``None`` before the
            first.
        consecutive_errors: Cycles in a row that raised.
        loop_lag_ms: How late the publisher woke up.
        tracks_cycles: Whether cycle completions are known at all; a service
            watched only through attributes it keeps itself may not say when
            its cycles finish, and then the stall rule cannot apply.
    """

    attached_at: float
    active_positions: int = 0
    loop_cycle_ms: float | None = None
    last_cycle_at: float | None = None
    last_decision_at: float | None = None
    consecutive_errors: int = 0
    loop_lag_ms: float = 0.0
    tracks_cycles: bool = True


@dataclasses.dataclass(frozen=True)
class Health:
    """The outcome of the rules.

    Attributes:
        status: ``OK`` or ``DEGRADED``.
        reason: Every rule that fired with its figures, joined by ``"; "``,
            for example ``cycle_ms=612>500``; empty when OK.
        rules: The names of the rules that fired, in a fixed order.
    """

    status: Status
    reason: str = ""
    rules: tuple[str, ...] = ()


OK = Health(Status.OK)


def _over(value: float, limit: float, places: int) -> str:
    # Rounded to ``places`` a figure just over its limit could read as equal
    # to it ("500>500"); show as many more decimals as it takes to tell.
    for shown in range(places, places + 4):
        text = f"{value:.{shown}f}"
        if float(text) > limit:
            return text
    return repr(value)


def _age_s(now: float, at: float | None, attached_at: float) -> float:
    # Before the first event, count from attach time; an event stamped before
    # attach time counts from attach; one stamped in the future (a clock that
    # stepped) counts as just now, never as a negative age.
    since = attached_at if at is None or at < attached_at else at
    return max(0.0, now - since)


def evaluate(snapshot: HealthSnapshot, now: float, policy: HealthPolicy) -> Health:
    """Judge a snapshot against the policy.

    Args:
        snapshot: What is known about the service.
        now: The current time, on the snapshot's clock.
        policy: The thresholds.

    Returns:
        ``OK``, or ``DEGRADED`` with the reason of every rule that fired.
    """
    fired: list[tuple[str, str]] = []

    cycle_ms = snapshot.loop_cycle_ms
    if cycle_ms is not None and cycle_ms > policy.max_cycle_ms:
        shown = _over(cycle_ms, policy.max_cycle_ms, 0)
        fired.append(("cycle", f"cycle_ms={shown}>{policy.max_cycle_ms:g}"))

    if snapshot.active_positions > 0:
        age = _age_s(now, snapshot.last_decision_at, snapshot.attached_at)
        if age > policy.decision_timeout_s:
            fired.append(
                (
                    "decision",
                    f"no_decision_s={_over(age, policy.decision_timeout_s, 1)}"
                    f">{policy.decision_timeout_s:g} "
                    f"positions={snapshot.active_positions}",
                )
            )

    if snapshot.tracks_cycles:
        age = _age_s(now, snapshot.last_cycle_at, snapshot.attached_at)
        if age > policy.stall_after_s:
            shown = _over(age, policy.stall_after_s, 1)
            fired.append(("stall", f"no_cycle_s={shown}>{policy.stall_after_s:g}"))

    if snapshot.consecutive_errors >= policy.max_consecutive_errors:
        fired.append(
            (
                "errors",
                f"consecutive_errors={snapshot.consecutive_errors}"
                f">={policy.max_consecutive_errors}",
            )
        )

    if snapshot.loop_lag_ms > policy.max_loop_lag_ms:
        fired.append(
            (
                "loop_lag",
                f"loop_lag_ms={_over(snapshot.loop_lag_ms, policy.max_loop_lag_ms, 0)}"
                f">{policy.max_loop_lag_ms:g}",
            )
        )

    if not fired:
        return OK
    return Health(
        Status.DEGRADED,
        "; ".join(reason for _, reason in fired),
        tuple(name for name, _ in fired),
    )
