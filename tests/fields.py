"""The entry fields every publisher promises, as its users were told."""

from __future__ import annotations

#: Fields existing consumers read, plus the ones added beside them.
SPEC_FIELDS = frozenset(
    {
        "timestamp",
        "status",
        "active_positions_count",
        "last_decision_ts",
        "loop_cycle_ms",
        "pending_exits",
        "reason",
        "service",
        "instance",
        "seq",
        "interval_s",
        "last_cycle_ts",
        "cycles",
        "errors",
        "loop_lag_ms",
        "schema_version",
    }
)
