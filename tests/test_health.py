"""Tests of the health rules: `evaluate` and `HealthPolicy`."""

from __future__ import annotations

import math

import pytest

from exit_heartbeat import ConfigError, HealthPolicy, HealthSnapshot, Status, evaluate

NOW = 10_000.0
POLICY = HealthPolicy()


def healthy(**changes: object) -> HealthSnapshot:
    """A snapshot that passes every default rule, with ``changes`` applied."""
    values: dict[str, object] = {
        "attached_at": NOW - 60.0,
        "active_positions": 2,
        "loop_cycle_ms": 40.0,
        "last_cycle_at": NOW - 1.0,
        "last_decision_at": NOW - 1.0,
        "consecutive_errors": 0,
        "loop_lag_ms": 3.0,
    }
    values.update(changes)
    return HealthSnapshot(**values)  # type: ignore[arg-type]


def test_evaluate_ok_when_no_rule_fires() -> None:
    """A healthy snapshot is OK with an empty reason and no rules."""
    health = evaluate(healthy(), NOW, POLICY)

    assert health.status is Status.OK
    assert health.reason == ""
    assert health.rules == ()


def test_evaluate_slow_cycle_degrades() -> None:
    """A cycle slower than max_cycle_ms degrades, with its figures."""
    health = evaluate(healthy(loop_cycle_ms=612.0), NOW, POLICY)

    assert health.status is Status.DEGRADED
    assert health.reason == "cycle_ms=612>500"
    assert health.rules == ("cycle",)


def test_evaluate_cycle_at_the_limit_is_ok() -> None:
    """A cycle of exactly max_cycle_ms is still OK."""
    assert evaluate(healthy(loop_cycle_ms=500.0), NOW, POLICY).status is Status.OK


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"loop_cycle_ms": 500.4}, "cycle_ms=500.4>500"),
        ({"loop_lag_ms": 250.01}, "loop_lag_ms=250.01>250"),
        ({"last_cycle_at": NOW - 10.04}, "no_cycle_s=10.04>10"),
    ],
)
def test_evaluate_reason_never_reads_as_equal_to_the_limit(
    changes: dict[str, float], reason: str
) -> None:
    """A figure just over its limit shows enough decimals to be seen over it."""
    assert evaluate(healthy(**changes), NOW, POLICY).reason == reason


def test_evaluate_no_decision_with_positions_degrades() -> None:
    """Open positions and no decision for decision_timeout_s degrade."""
    health = evaluate(healthy(last_decision_at=NOW - 12.5), NOW, POLICY)

    assert health.status is Status.DEGRADED
    assert health.reason == "no_decision_s=12.5>10 positions=2"
    assert health.rules == ("decision",)


def test_evaluate_no_decision_without_positions_is_ok() -> None:
    """With no position open, a long silence in decisions is fine."""
    snapshot = healthy(active_positions=0, last_decision_at=NOW - 3600.0)

    assert evaluate(snapshot, NOW, POLICY).status is Status.OK


def test_evaluate_fresh_start_gets_its_grace_period() -> None:
    """Positions open and no decision yet: OK until decision_timeout_s after attach."""
    snapshot = healthy(attached_at=NOW - 9.0, last_decision_at=None)

    assert evaluate(snapshot, NOW, POLICY).status is Status.OK
    late = evaluate(snapshot, NOW + 1.5, POLICY)
    assert late.status is Status.DEGRADED
    assert late.reason == "no_decision_s=10.5>10 positions=2"


def test_evaluate_decision_before_attach_counts_from_attach() -> None:
    """A decision stamped before attach time still leaves the fresh-start grace."""
    snapshot = healthy(attached_at=NOW - 5.0, last_decision_at=NOW - 500.0)

    assert evaluate(snapshot, NOW, POLICY).status is Status.OK


def test_evaluate_stall_degrades_while_beats_go_on() -> None:
    """No finished cycle for stall_after_s degrades the service."""
    health = evaluate(healthy(last_cycle_at=NOW - 11.0), NOW, POLICY)

    assert health.status is Status.DEGRADED
    assert health.reason == "no_cycle_s=11.0>10"
    assert health.rules == ("stall",)


def test_evaluate_stall_counts_from_attach_before_first_cycle() -> None:
    """Before the first cycle, the stall rule counts from attach time."""
    snapshot = healthy(attached_at=NOW - 4.0, last_cycle_at=None)
    assert evaluate(snapshot, NOW, POLICY).status is Status.OK

    health = evaluate(snapshot, NOW + 7.0, POLICY)
    assert health.rules == ("stall",)


def test_evaluate_stall_ignored_when_cycles_are_not_tracked() -> None:
    """A service that does not report cycles cannot stall by this rule."""
    snapshot = healthy(last_cycle_at=None, tracks_cycles=False)

    assert evaluate(snapshot, NOW, POLICY).status is Status.OK


def test_evaluate_consecutive_errors_degrade() -> None:
    """The last max_consecutive_errors cycles all raising degrades."""
    assert evaluate(healthy(consecutive_errors=2), NOW, POLICY).status is Status.OK

    health = evaluate(healthy(consecutive_errors=3), NOW, POLICY)
    assert health.reason == "consecutive_errors=3>=3"
    assert health.rules == ("errors",)


def test_evaluate_loop_lag_degrades() -> None:
    """A publisher waking more than max_loop_lag_ms late degrades."""
    health = evaluate(healthy(loop_lag_ms=1250.0), NOW, POLICY)

    assert health.status is Status.DEGRADED
    assert health.reason == "loop_lag_ms=1250>250"
    assert health.rules == ("loop_lag",)


def test_evaluate_reports_every_rule_that_fires() -> None:
    """Several rules at once are all named, in a fixed order."""
    snapshot = healthy(
        loop_cycle_ms=900.0,
        last_decision_at=NOW - 20.0,
        last_cycle_at=NOW - 15.0,
        consecutive_errors=4,
        loop_lag_ms=300.0,
    )

    health = evaluate(snapshot, NOW, POLICY)

    assert health.status is Status.DEGRADED
    assert health.rules == ("cycle", "decision", "stall", "errors", "loop_lag")
    assert health.reason == (
        "cycle_ms=900>500; no_decision_s=20.0>10 positions=2; "
        "no_cycle_s=15.0>10; consecutive_errors=4>=3; loop_lag_ms=300>250"
    )


def test_evaluate_uses_configured_thresholds() -> None:
    """Every threshold comes from the policy, not from the defaults."""
    policy = HealthPolicy(
        max_cycle_ms=50.0,
        decision_timeout_s=2.0,
        stall_after_s=3.0,
        max_consecutive_errors=1,
        max_loop_lag_ms=5.0,
    )
    snapshot = healthy(
        loop_cycle_ms=60.0,
        last_decision_at=NOW - 2.5,
        last_cycle_at=NOW - 3.5,
        consecutive_errors=1,
        loop_lag_ms=6.0,
    )

    health = evaluate(snapshot, NOW, policy)

    assert health.reason == (
        "cycle_ms=60>50; no_decision_s=2.5>2 positions=2; "
        "no_cycle_s=3.5>3; consecutive_errors=1>=1; loop_lag_ms=6>5"
    )
    assert evaluate(snapshot, NOW, POLICY).status is Status.OK


def test_health_policy_defaults_match_the_integration_note() -> None:
    """The defaults are 500 ms, 10 s, 10 s, 3 errors and 250 ms."""
    assert HealthPolicy() == HealthPolicy(
        max_cycle_ms=500.0,
        decision_timeout_s=10.0,
        stall_after_s=10.0,
        max_consecutive_errors=3,
        max_loop_lag_ms=250.0,
    )


@pytest.mark.parametrize(
    "name",
    ["max_cycle_ms", "decision_timeout_s", "stall_after_s", "max_loop_lag_ms"],
)
@pytest.mark.parametrize("value", [0, -1.0, math.inf, math.nan])
def test_health_policy_refuses_non_positive_thresholds(name: str, value: float) -> None:
    """A threshold that is not a positive finite number is a ConfigError."""
    with pytest.raises(ConfigError, match=rf"^{name} must be a positive number"):
        HealthPolicy(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["500", None, True])
def test_health_policy_refuses_non_numbers(value: object) -> None:
    """A threshold that is not a number names the option, its unit and value."""
    with pytest.raises(ConfigError) as caught:
        HealthPolicy(max_cycle_ms=value)  # type: ignore[arg-type]

    assert str(caught.value) == (
        f"max_cycle_ms must be a number of milliseconds, got {value!r}"
    )


@pytest.mark.parametrize("value", [0, -2, 2.5, True, "3"])
def test_health_policy_refuses_bad_error_count(value: object) -> None:
    """max_consecutive_errors must be a whole number of 1 or more."""
    with pytest.raises(ConfigError, match="max_consecutive_errors must be a whole"):
        HealthPolicy(max_consecutive_errors=value)  # type: ignore[arg-type]


def test_health_policy_error_is_a_value_error() -> None:
    """Bad thresholds can be caught as plain ValueError."""
    with pytest.raises(ValueError, match="stall_after_s"):
        HealthPolicy(stall_after_s=-5.0)


def test_evaluate_event_in_the_future_counts_as_just_now() -> None:
    """A decision stamped after ``now`` gives an age of zero, never negative."""
    snapshot = healthy(last_decision_at=NOW + 30.0, last_cycle_at=NOW + 30.0)

    assert evaluate(snapshot, NOW, POLICY).status is Status.OK
