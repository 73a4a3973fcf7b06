"""Property tests: the entry decoder and the health rules on any input.

Whatever a stream holds (another program's entry, a truncated write, binary
garbage) the decoder answers with an entry or `MalformedEntryError`, and the
health rules answer any snapshot with a `Health`. Any other exception would
crash a watchdog on the input it exists to judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exit_heartbeat import (
    HealthPolicy,
    HealthSnapshot,
    HeartbeatEntry,
    MalformedEntryError,
    Status,
    decode_entry,
    encode_entry,
    evaluate,
)

FIELDS = (
    "timestamp",
    "status",
    "reason",
    "active_positions_count",
    "pending_exits",
    "last_decision_ts",
    "loop_cycle_ms",
    "max_cycle_ms",
    "last_cycle_ts",
    "cycles",
    "errors",
    "consecutive_errors",
    "loop_lag_ms",
    "interval_s",
    "seq",
    "service",
    "instance",
    "schema_version",
)

# Numbers written the ways a broken or hostile publisher might write them.
number_text = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["nan", "NaN", "-inf", "Infinity", "1e999", "-0", "0x10", "1_000", " 7 ", ""]
    ),
)
value_text = st.one_of(
    number_text,
    st.sampled_from([s.value for s in Status] + ["ok", "DEAD"]),
    st.text(max_size=30),
    st.text(min_size=1000, max_size=1100),
)
values = st.one_of(value_text, value_text.map(str.encode), st.binary(max_size=40))
names = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
raw_fields = st.dictionaries(names, values, max_size=24)
byte_fields = st.dictionaries(names.map(str.encode) | st.binary(max_size=12), values)

# A snapshot of any values at all: the publisher never builds some of these,
# but a watchdog judging a decoded entry may.
any_float = st.floats(allow_nan=True, allow_infinity=True)
snapshots = st.builds(
    HealthSnapshot,
    attached_at=any_float,
    active_positions=st.integers(min_value=-(2**70), max_value=2**70),
    loop_cycle_ms=st.none() | any_float,
    last_cycle_at=st.none() | any_float,
    last_decision_at=st.none() | any_float,
    consecutive_errors=st.integers(min_value=-(2**70), max_value=2**70),
    loop_lag_ms=any_float,
    tracks_cycles=st.booleans(),
)
positive = st.floats(min_value=1e-9, max_value=1e12)
policies = st.builds(
    HealthPolicy,
    max_cycle_ms=positive,
    decision_timeout_s=positive,
    stall_after_s=positive,
    max_consecutive_errors=st.integers(min_value=1, max_value=10**6),
    max_loop_lag_ms=positive,
)


def _decode_or_malformed(fields: Mapping[Any, Any]) -> None:
    outcome: HeartbeatEntry | MalformedEntryError
    try:
        outcome = decode_entry(fields)
    except MalformedEntryError as exc:
        outcome = exc

    if isinstance(outcome, MalformedEntryError):
        assert outcome.field
        assert outcome.why
    else:
        assert math.isfinite(outcome.timestamp)


@settings(max_examples=400)
@given(raw_fields)
def test_decode_entry_any_str_fields_decode_or_are_malformed(
    fields: dict[str, object],
) -> None:
    """Any mix of known, unknown and missing text fields: entry or malformed."""
    _decode_or_malformed(fields)


@settings(max_examples=300)
@given(byte_fields)
def test_decode_entry_any_byte_fields_decode_or_are_malformed(
    fields: dict[bytes, object],
) -> None:
    """Any bytes as names and values, as redis-py returns them: entry or malformed."""
    _decode_or_malformed(fields)


@settings(max_examples=300)
@given(
    st.sampled_from(FIELDS),
    values,
    st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=5),
)
def test_decode_entry_one_field_broken_in_a_good_entry(
    name: str, value: object, extra: dict[str, str]
) -> None:
    """A real entry with one field replaced and extra fields: entry or malformed."""
    good = encode_entry(HeartbeatEntry(timestamp=1_800_000_000.0, status=Status.OK))
    fields: dict[str, object] = {**extra, **good, name: value}
    _decode_or_malformed(fields)


@settings(max_examples=200)
@given(
    st.sampled_from(FIELDS),
    st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=5),
)
def test_decode_entry_good_entry_with_a_field_missing(
    name: str, extra: dict[str, str]
) -> None:
    """A real entry missing any one field decodes, unless the field is required."""
    good = encode_entry(HeartbeatEntry(timestamp=1_800_000_000.0, status=Status.OK))
    fields = {**extra, **good}
    del fields[name]
    required = name in ("timestamp", "status")
    if required:
        with pytest.raises(MalformedEntryError) as caught:
            decode_entry(fields)
        assert caught.value.field == name
    else:
        assert decode_entry(fields).timestamp == 1_800_000_000.0


@settings(max_examples=500)
@given(snapshots, any_float, policies)
def test_evaluate_any_snapshot_gives_a_health(
    snapshot: HealthSnapshot, now: float, policy: HealthPolicy
) -> None:
    """Any snapshot and clock reading, negative ages included: a Health, no raise."""
    health = evaluate(snapshot, now, policy)

    assert health.status in (Status.OK, Status.DEGRADED)
    assert (health.status is Status.OK) == (not health.rules)
    assert len(health.reason.split("; ")) == len(health.rules) or not health.rules
