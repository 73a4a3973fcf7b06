"""The heartbeat entry: its fields, how it is written and how it is read back.

An entry is a flat mapping of field names to strings, as Redis streams store it.
`encode_entry` writes one; `decode_entry` reads one written by this library or
by an older hand-written publisher that sets only the first few fields, and
turns anything it cannot trust into a `MalformedEntryError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from exit_heartbeat.errors import MalformedEntryError
from exit_heartbeat.status import Status

__all__ = ["SCHEMA_VERSION", "HeartbeatEntry", "decode_entry", "encode_entry"]

#: Version of the entry layout; bumped when a field changes meaning.
SCHEMA_VERSION = 1

# Wall-clock timestamps outside these bounds (2000-01-01 and 2100-01-01) are
# taken as garbage rather than as a clock that is decades off.
_MIN_TS = 946_684_800.0
_MAX_TS = 4_102_444_800.0

# Beyond these a figure is not a measurement but a bug or corruption.
_MAX_MS = 1e9
_MAX_INTERVAL_S = 86_400.0
_MAX_COUNT = 2**63 - 1
_MAX_TEXT = 1_000

_REQUIRED = ("timestamp", "status")


@dataclasses.dataclass(frozen=True)
class HeartbeatEntry:
    """One heartbeat, as published to the stream.

    Times named ``*_ts`` are Unix wall-clock seconds; ``None`` means "never".
    Only `timestamp` and `status` are required when decoding: the rest default
    to what an older publisher that did not send them would have meant.

    Attributes:
        timestamp: When the entry was made.
        status: OK, DEGRADED or STOPPED.
        reason: Why the status is not OK, empty when it is.
        active_positions_count: Open positions the service is responsible for.
        pending_exits: Exits decided but not yet carried out.
        last_decision_ts: When the service last made a decision.
        loop_cycle_ms: Duration of the last finished cycle.
        max_cycle_ms: Slowest cycle since the previous entry.
        last_cycle_ts: When the last cycle finished.
        cycles: Cycles finished since the service started.
        errors: Cycles that raised since the service started.
        consecutive_errors: Cycles in a row that raised, up to the last one.
        loop_lag_ms: How late the publisher woke up for this entry.
        interval_s: The publisher's interval between entries.
        seq: Sequence number of the entry, from 0 at attach time.
        service: Name of the service.
        instance: Host and process id of the publisher, as ``host:pid``.
        schema_version: Layout version of the entry.
    """

    timestamp: float
    status: Status
    reason: str = ""
    active_positions_count: int = 0
    pending_exits: int = 0
    last_decision_ts: float | None = None
    loop_cycle_ms: float = 0.0
    max_cycle_ms: float = 0.0
    last_cycle_ts: float | None = None
    cycles: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    loop_lag_ms: float = 0.0
    interval_s: float = 1.0
    seq: int = 0
    service: str = ""
    instance: str = ""
    schema_version: int = SCHEMA_VERSION


def _format_ts(value: float | None) -> str:
    return "0" if value is None else f"{value:.6f}"


def _format_ms(value: float) -> str:
    return f"{value:.3f}"


def encode_entry(entry: HeartbeatEntry) -> dict[str, str]:
    """Turn an entry into the string fields that XADD stores.

    Args:
        entry: The entry to write.

    Returns:
        A new dict of field name to string value. A timestamp of "never" is
        written as ``"0"``, which is what existing consumers expect.
    """
    return {
        "timestamp": _format_ts(entry.timestamp),
        "status": entry.status.value,
        "reason": entry.reason,
        "active_positions_count": str(entry.active_positions_count),
        "pending_exits": str(entry.pending_exits),
        "last_decision_ts": _format_ts(entry.last_decision_ts),
        "loop_cycle_ms": _format_ms(entry.loop_cycle_ms),
        "max_cycle_ms": _format_ms(entry.max_cycle_ms),
        "last_cycle_ts": _format_ts(entry.last_cycle_ts),
        "cycles": str(entry.cycles),
        "errors": str(entry.errors),
        "consecutive_errors": str(entry.consecutive_errors),
        "loop_lag_ms": _format_ms(entry.loop_lag_ms),
        "interval_s": repr(float(entry.interval_s)),
        "seq": str(entry.seq),
        "service": entry.service,
        "instance": entry.instance,
        "schema_version": str(entry.schema_version),
    }


def _text(name: str, raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedEntryError(name, "is not valid UTF-8 text") from None
    if len(raw) > _MAX_TEXT:
        raise MalformedEntryError(name, f"is {len(raw)} characters long")
    return raw


def _number(name: str, raw: bytes | str, low: float, high: float) -> float:
    text = _text(name, raw)
    try:
        value = float(text)
    except ValueError:
        raise MalformedEntryError(name, f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise MalformedEntryError(
            name, f"{text[:40]!r} is outside the range {low:g} to {high:g}"
        )
    return value


def _count(name: str, raw: bytes | str) -> int:
    text = _text(name, raw)
    try:
        value = int(text)
    except ValueError:
        raise MalformedEntryError(
            name, f"{text[:40]!r} is not a whole number"
        ) from None
    if not 0 <= value <= _MAX_COUNT:
        raise MalformedEntryError(name, f"{text[:40]!r} is not a count")
    return value


def _timestamp(name: str, raw: bytes | str) -> float | None:
    text = _text(name, raw)
    if text in ("", "0", "0.0", "0.000000"):
        return None
    return _number(name, text, _MIN_TS, _MAX_TS)


def _status(raw: bytes | str) -> Status:
    text = _text("status", raw)
    try:
        return Status(text)
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise MalformedEntryError(
            "status", f"{text[:40]!r} is not one of {known}"
        ) from None


def decode_entry(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> HeartbeatEntry:
    """Read an entry back from the fields XRANGE or XREAD returned.

    Keys and values may be bytes or str. Fields this version does not know are
    ignored, so newer publishers can add fields without breaking older readers.

    Args:
        fields: The entry's fields.

    Returns:
        The decoded entry.

    Raises:
        MalformedEntryError: A required field is missing, or a field holds
            something that is not text, not a number, or out of range. The
            error names the field.
    """
    raw: dict[str, bytes | str] = {}
    for key, value in fields.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        raw[name] = value

    for name in _REQUIRED:
        if name not in raw:
            raise MalformedEntryError(name, "is missing")

    timestamp = _timestamp("timestamp", raw["timestamp"])
    if timestamp is None:
        raise MalformedEntryError("timestamp", "is zero or empty")
    values: dict[str, object] = {
        "timestamp": timestamp,
        "status": _status(raw["status"]),
    }

    for name in ("reason", "service", "instance"):
        if name in raw:
            values[name] = _text(name, raw[name])
    for name in (
        "active_positions_count",
        "pending_exits",
        "cycles",
        "errors",
        "consecutive_errors",
        "seq",
        "schema_version",
    ):
        if name in raw:
            values[name] = _count(name, raw[name])
    for name in ("loop_cycle_ms", "max_cycle_ms", "loop_lag_ms"):
        if name in raw:
            values[name] = _number(name, raw[name], 0.0, _MAX_MS)
    for name in ("last_decision_ts", "last_cycle_ts"):
        if name in raw:
            values[name] = _timestamp(name, raw[name])
    if "interval_s" in raw:
        interval_s = _number("interval_s", raw["interval_s"], 0.0, _MAX_INTERVAL_S)
        if interval_s == 0.0:
            raise MalformedEntryError("interval_s", "is zero")
        values["interval_s"] = interval_s

    return HeartbeatEntry(**values)  # type: ignore[arg-type]
