"""Tests of verdicts, their order and exit codes, and judging one entry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exit_heartbeat import HeartbeatEntry, InstanceReport, Status, Verdict
from exit_heartbeat.verdict import exit_code, judge, stale_limit_s, worst

NOW = 1_800_000_000.0


def entry(status: Status = Status.OK, **fields: object) -> HeartbeatEntry:
    """An entry stamped at NOW."""
    values: dict[str, Any] = {"timestamp": NOW, "status": status, **fields}
    return HeartbeatEntry(**values)


def report(verdict: Verdict, stream: str = "s", instance: str = "i") -> InstanceReport:
    """A report with the given verdict."""
    return InstanceReport(stream, instance, verdict)


def test_verdict_severity_follows_declaration_order() -> None:
    """Severity ranks OK lowest and UNREACHABLE highest, in declaration order."""
    ranks = [verdict.severity for verdict in Verdict]

    assert ranks == sorted(ranks)
    assert Verdict.OK.severity == 0
    assert Verdict.DEGRADED.severity < Verdict.STOPPED.severity
    assert Verdict.STALE.severity < Verdict.UNREACHABLE.severity


@pytest.mark.parametrize(
    ("verdict", "code"),
    [
        (Verdict.OK, 0),
        (Verdict.DEGRADED, 1),
        (Verdict.STALE, 2),
        (Verdict.STOPPED, 2),
        (Verdict.MISSING, 2),
        (Verdict.MALFORMED, 3),
        (Verdict.UNREACHABLE, 3),
    ],
)
def test_verdict_exit_code_follows_probe_convention(
    verdict: Verdict, code: int
) -> None:
    """Each verdict maps to the Nagios-style exit code the spec gives it."""
    assert verdict.exit_code == code


def test_verdict_is_failure_excludes_ok_and_planned_stop() -> None:
    """OK and STOPPED are not failures; every other verdict is."""
    failures = {verdict for verdict in Verdict if verdict.is_failure}

    assert failures == set(Verdict) - {Verdict.OK, Verdict.STOPPED}


def test_worst_picks_the_most_severe_verdict() -> None:
    """worst() returns the highest-ranked verdict among the reports."""
    reports = [report(Verdict.OK), report(Verdict.STALE), report(Verdict.DEGRADED)]

    assert worst(reports) is Verdict.STALE
    assert exit_code(reports) == 2


def test_worst_of_nothing_is_missing() -> None:
    """A check that found nothing is MISSING, never a reassuring OK."""
    assert worst([]) is Verdict.MISSING
    assert exit_code([]) == 2


def test_judge_fresh_ok_entry_is_ok() -> None:
    """A young OK entry gives OK with no reason."""
    assert judge(entry(), age_s=0.4) == (Verdict.OK, "")


def test_judge_old_entry_is_stale_with_age_and_limit() -> None:
    """An entry older than stale_after_s gives STALE, naming age and limit."""
    verdict, reason = judge(entry(), age_s=4.25, stale_after_s=3.0)

    assert verdict is Verdict.STALE
    assert "4.2s" in reason
    assert "3s" in reason


def test_judge_stale_limit_stretches_to_three_published_intervals() -> None:
    """A slow publisher (interval_s=5) is judged on 3 x 5 s, not on 3 s."""
    slow = entry(interval_s=5.0)

    assert stale_limit_s(slow, 3.0, 3.0) == 15.0
    assert judge(slow, age_s=14.0)[0] is Verdict.OK
    assert judge(slow, age_s=15.5)[0] is Verdict.STALE


def test_judge_degraded_entry_keeps_its_reason() -> None:
    """DEGRADED as published carries the publisher's own reason."""
    verdict, reason = judge(entry(Status.DEGRADED, reason="cycle_ms=612>500"), 0.5)

    assert verdict is Verdict.DEGRADED
    assert reason == "cycle_ms=612>500"


def test_judge_stale_beats_degraded() -> None:
    """A degraded instance that stopped beating is STALE: silence is worse."""
    assert judge(entry(Status.DEGRADED, reason="x"), age_s=60.0)[0] is Verdict.STALE


def test_judge_stopped_entry_stays_stopped_whatever_its_age() -> None:
    """A clean stop is final: an old STOPPED entry is not reported STALE."""
    assert judge(entry(Status.STOPPED), age_s=3_000.0)[0] is Verdict.STOPPED


def test_report_status_line_has_the_grepped_form() -> None:
    """status_line gives 'Status: heartbeat=0.4s ago, status=OK'."""
    line = InstanceReport("s", "h:1", Verdict.OK, age_s=0.4).status_line()

    assert line == "Status: heartbeat=0.4s ago, status=OK"


def test_report_status_line_adds_reason_and_subject() -> None:
    """With a reason and with_subject, both are appended to the line."""
    line = InstanceReport(
        "s", "h:1", Verdict.STALE, "no heartbeat for 5.0s (limit 3s)", 5.0
    ).status_line(with_subject=True)

    assert line == (
        "Status: heartbeat=5.0s ago, status=STALE, "
        "reason=no heartbeat for 5.0s (limit 3s), stream=s, instance=h:1"
    )


def test_report_to_dict_is_json_ready() -> None:
    """to_dict gives plain values, the entry as its published string fields."""
    data = InstanceReport(
        "s", "h:1", Verdict.OK, "", 0.4, NOW, "1-0", entry(instance="h:1")
    ).to_dict()

    assert json.loads(json.dumps(data)) == data
    assert data["verdict"] == "OK"
    assert data["entry"]["status"] == "OK"
