"""Tests of hysteresis: which checks confirm a transition."""

from __future__ import annotations

from exit_heartbeat.hysteresis import Hysteresis, Transition
from exit_heartbeat.verdict import InstanceReport, Verdict


def feed(hysteresis: Hysteresis, *verdicts: Verdict) -> list[Transition]:
    """Feed one report per verdict, a second apart; the transitions confirmed."""
    transitions = []
    for at, verdict in enumerate(verdicts):
        report = InstanceReport("s", "i", verdict, reason=f"{verdict} at {at}")
        transition = hysteresis.update(report, float(at))
        if transition is not None:
            transitions.append(transition)
    return transitions


def test_hysteresis_first_ok_is_silent() -> None:
    """Seeing a healthy instance for the first time confirms OK with no transition."""
    hysteresis = Hysteresis(2, 2)

    assert feed(hysteresis, Verdict.OK) == []
    assert hysteresis.confirmed is Verdict.OK


def test_hysteresis_failure_needs_alert_after_checks() -> None:
    """A failure is confirmed on the alert_after-th check in a row, not before."""
    hysteresis = Hysteresis(3, 2)

    [transition] = feed(
        hysteresis, Verdict.OK, Verdict.STALE, Verdict.STALE, Verdict.STALE
    )

    assert transition.at == 3.0
    assert (transition.previous, transition.verdict) == (Verdict.OK, Verdict.STALE)


def test_hysteresis_mixed_failures_count_as_one_run() -> None:
    """DEGRADED then STALE from OK are two failing checks: the latest is confirmed."""
    [transition] = feed(Hysteresis(2, 2), Verdict.OK, Verdict.DEGRADED, Verdict.STALE)

    assert transition.verdict is Verdict.STALE


def test_hysteresis_recovery_reports_how_long_trouble_lasted() -> None:
    """The recovery's trouble_s runs from the first bad check to the first good."""
    transitions = feed(
        Hysteresis(2, 2),
        Verdict.OK,
        Verdict.STALE,
        Verdict.STALE,
        Verdict.STALE,
        Verdict.OK,
        Verdict.OK,
    )

    recovery = transitions[-1]
    assert recovery.is_recovery
    assert recovery.trouble_s == 3.0
    assert recovery.reason == "STALE at 3"


def test_hysteresis_one_ok_inside_trouble_does_not_recover() -> None:
    """A lone OK check between failures confirms nothing."""
    transitions = feed(
        Hysteresis(2, 2),
        Verdict.OK,
        Verdict.STALE,
        Verdict.STALE,
        Verdict.OK,
        Verdict.STALE,
        Verdict.OK,
    )

    assert [t.verdict for t in transitions] == [Verdict.STALE]


def test_hysteresis_clean_stop_is_confirmed_at_once_and_not_an_alert() -> None:
    """STOPPED is confirmed on its first check and is no alert."""
    [transition] = feed(Hysteresis(3, 3), Verdict.OK, Verdict.STOPPED)

    assert transition.verdict is Verdict.STOPPED
    assert not transition.is_alert


def test_hysteresis_redis_back_is_confirmed_at_once() -> None:
    """After UNREACHABLE, one OK check confirms the recovery."""
    transitions = feed(
        Hysteresis(2, 5),
        Verdict.OK,
        Verdict.UNREACHABLE,
        Verdict.UNREACHABLE,
        Verdict.OK,
    )

    assert [t.verdict for t in transitions] == [Verdict.UNREACHABLE, Verdict.OK]
