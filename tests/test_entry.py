"""Tests of the heartbeat entry: `encode_entry` and `decode_entry`."""

from __future__ import annotations

import pytest

from exit_heartbeat import (
    SCHEMA_VERSION,
    HeartbeatEntry,
    MalformedEntryError,
    Status,
    decode_entry,
    encode_entry,
)

FULL = HeartbeatEntry(
    timestamp=1_800_000_000.5,
    status=Status.DEGRADED,
    reason="cycle_ms=612>500",
    active_positions_count=3,
    pending_exits=1,
    last_decision_ts=1_799_999_999.25,
    loop_cycle_ms=612.125,
    max_cycle_ms=900.5,
    last_cycle_ts=1_800_000_000.0,
    cycles=41,
    errors=2,
    consecutive_errors=1,
    loop_lag_ms=3.5,
    interval_s=0.5,
    seq=7,
    service="ExitBrain",
    instance="host-a:4242",
)

FIELDS = {
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
}


def test_encode_entry_writes_every_field_as_a_string() -> None:
    """Every documented field is written, and every value is a str."""
    fields = encode_entry(FULL)

    assert set(fields) == FIELDS
    assert all(isinstance(value, str) for value in fields.values())
    assert fields["status"] == "DEGRADED"
    assert fields["active_positions_count"] == "3"
    assert fields["loop_cycle_ms"] == "612.125"
    assert fields["schema_version"] == str(SCHEMA_VERSION)


def test_encode_entry_writes_never_as_zero() -> None:
    """A time that never happened is written "0", as old consumers expect."""
    fields = encode_entry(HeartbeatEntry(timestamp=1_800_000_000.0, status=Status.OK))

    assert fields["last_decision_ts"] == "0"
    assert fields["last_cycle_ts"] == "0"


def test_decode_entry_reads_back_what_encode_wrote() -> None:
    """Decoding an encoded entry gives the same entry, from str or bytes."""
    fields = encode_entry(FULL)
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}

    assert decode_entry(fields) == FULL
    assert decode_entry(as_bytes) == FULL


def test_decode_entry_accepts_an_old_minimal_entry() -> None:
    """An older publisher's entry with a few fields decodes with defaults."""
    entry = decode_entry(
        {
            "timestamp": "1800000000.0",
            "status": "OK",
            "active_positions_count": "2",
            "last_decision_ts": "0",
            "loop_cycle_ms": "12",
            "pending_exits": "0",
        }
    )

    assert entry.status is Status.OK
    assert entry.active_positions_count == 2
    assert entry.last_decision_ts is None
    assert entry.loop_cycle_ms == 12.0
    assert entry.seq == 0


def test_decode_entry_ignores_unknown_fields() -> None:
    """Fields a newer publisher adds are ignored, not an error."""
    fields = {**encode_entry(FULL), "shiny_new_field": "x"}

    assert decode_entry(fields) == FULL


@pytest.mark.parametrize("name", ["timestamp", "status"])
def test_decode_entry_requires_timestamp_and_status(name: str) -> None:
    """A missing required field is a MalformedEntryError naming it."""
    fields = encode_entry(FULL)
    del fields[name]

    with pytest.raises(MalformedEntryError) as caught:
        decode_entry(fields)

    assert caught.value.field == name
    assert caught.value.why == "is missing"


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("timestamp", "0", "is zero or empty"),
        ("timestamp", "yesterday", "is not a number"),
        ("timestamp", "12.0", "outside the range"),
        ("status", "FINE", "is not one of OK, DEGRADED, STOPPED"),
        ("cycles", "-1", "is not a count"),
        ("cycles", "1.5", "is not a whole number"),
        ("loop_cycle_ms", "nan", "outside the range"),
        ("loop_cycle_ms", "-3", "outside the range"),
        ("interval_s", "0", "is zero"),
        ("reason", "x" * 1001, "1001 characters long"),
    ],
)
def test_decode_entry_names_the_bad_field(name: str, value: str, why: str) -> None:
    """A field that cannot be trusted raises an error naming field and fault."""
    fields = {**encode_entry(FULL), name: value}

    with pytest.raises(MalformedEntryError) as caught:
        decode_entry(fields)

    assert caught.value.field == name
    assert why in caught.value.why
    assert str(caught.value).startswith(f"field {name!r}: ")


def test_decode_entry_refuses_invalid_utf8() -> None:
    """Bytes that are not UTF-8 are a MalformedEntryError, not a crash."""
    fields = {k.encode(): v.encode() for k, v in encode_entry(FULL).items()}
    fields[b"service"] = b"\xff\xfe"

    with pytest.raises(MalformedEntryError, match="not valid UTF-8"):
        decode_entry(fields)


def test_decode_entry_error_is_a_value_error() -> None:
    """Decoding errors can be caught as plain ValueError."""
    with pytest.raises(ValueError, match="status"):
        decode_entry({"timestamp": "1800000000"})
