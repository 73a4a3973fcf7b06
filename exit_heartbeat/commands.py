"""What each ``exit-heartbeat`` command does, as functions that return exit codes.

The command line (`exit_heartbeat.cli`) only parses options, builds the Redis
client and calls one of these; scripts and tests can call them directly with
a client of their own. Every function writes its output to ``out`` and never
raises for what Redis does.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from redis.exceptions import RedisError

from exit_heartbeat.entry import HeartbeatEntry, decode_entry
from exit_heartbeat.errors import MalformedEntryError
from exit_heartbeat.notify import SystemdNotifier
from exit_heartbeat.verdict import InstanceReport, Verdict, exit_code, worst
from exit_heartbeat.watchdog import Watchdog, check_streams

__all__ = ["check", "describe_entry", "status", "tail", "watch"]

#: Exit code of a command that could not do its job at all.
EXIT_UNKNOWN = 3

#: Makes a line fit to print, for example by hiding passwords.
Scrub = Callable[[str], str]


def _same(text: str) -> str:
    return text


async def check(
    redis: Any,
    streams: Sequence[str],
    pattern: str | None,
    *,
    out: TextIO,
    as_json: bool = False,
    stale_after_s: float = 3.0,
    stale_intervals: float = 3.0,
    timeout_s: float = 2.0,
    scrub: Scrub = _same,
) -> int:
    """Judge every instance once and print a line per instance.

    Args:
        redis: A ``redis.asyncio`` client.
        streams: Stream keys to check.
        pattern: A SCAN pattern for more streams.
        out: Where to print.
        as_json: Print one JSON document instead of lines.
        stale_after_s: See `exit_heartbeat.Watchdog`.
        stale_intervals: See `exit_heartbeat.Watchdog`.
        timeout_s: Longest wait for one Redis round trip.
        scrub: Applied to every line printed, to hide passwords.

    Returns:
        0 all OK, 1 DEGRADED, 2 STALE, STOPPED or MISSING, 3 MALFORMED or
        UNREACHABLE: the code of the worst verdict.
    """
    reports = await check_streams(
        redis,
        streams,
        pattern,
        stale_after_s=stale_after_s,
        stale_intervals=stale_intervals,
        timeout_s=timeout_s,
    )
    code = exit_code(reports)
    if as_json:
        document = {
            "verdict": worst(reports).value,
            "exit_code": code,
            "reports": [report.to_dict() for report in reports],
        }
        print(scrub(json.dumps(document, indent=2)), file=out)
    elif not reports:
        print(f"Status: heartbeat=none, status=MISSING, pattern={pattern}", file=out)
    else:
        for report in reports:
            print(scrub(report.status_line(with_subject=True)), file=out)
    return code


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _decision_age_s(entry: HeartbeatEntry, age_s: float) -> float | None:
    # Measured on the publisher's own clock up to the entry, then on the
    # server's since: a publisher with a skewed clock is still read right.
    if entry.last_decision_ts is None:
        return None
    return max(0.0, entry.timestamp - entry.last_decision_ts) + age_s


def _row(report: InstanceReport) -> dict[str, Any]:
    entry = report.entry
    decision_age_s = (
        None
        if entry is None or report.age_s is None
        else _decision_age_s(entry, report.age_s)
    )
    return {
        "stream": report.stream,
        "instance": report.instance,
        "status": report.verdict.value,
        "age_s": None if report.age_s is None else round(report.age_s, 3),
        "loop_cycle_ms": None if entry is None else entry.loop_cycle_ms,
        "active_positions": None if entry is None else entry.active_positions_count,
        "pending_exits": None if entry is None else entry.pending_exits,
        "decision_age_s": (
            None if decision_age_s is None else round(decision_age_s, 3)
        ),
        "reason": report.reason,
    }


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


async def status(
    redis: Any,
    streams: Sequence[str],
    pattern: str | None,
    *,
    out: TextIO,
    as_json: bool = False,
    stale_after_s: float = 3.0,
    stale_intervals: float = 3.0,
    timeout_s: float = 2.0,
    scrub: Scrub = _same,
) -> int:
    """Print the newest heartbeat of each instance as an aligned table.

    Args:
        redis: A ``redis.asyncio`` client.
        streams: Stream keys to show.
        pattern: A SCAN pattern for more streams.
        out: Where to print.
        as_json: Print a JSON list of rows instead.
        stale_after_s: See `exit_heartbeat.Watchdog`.
        stale_intervals: See `exit_heartbeat.Watchdog`.
        timeout_s: Longest wait for one Redis round trip.
        scrub: Applied to every line printed, to hide passwords.

    Returns:
        0 when the table could be made, 3 when Redis could not be read.
    """
    reports = await check_streams(
        redis,
        streams,
        pattern,
        stale_after_s=stale_after_s,
        stale_intervals=stale_intervals,
        timeout_s=timeout_s,
    )
    rows = [_row(report) for report in reports]
    if as_json:
        print(scrub(json.dumps(rows, indent=2)), file=out)
    elif not rows:
        print("no heartbeat stream found", file=out)
    else:
        several = len({row["stream"] for row in rows}) > 1
        header = ["INSTANCE", "STATUS", "AGE", "CYCLE_MS", "POSITIONS", "DECIDED"]
        table = [(["STREAM"] if several else []) + header + ["REASON"]]
        for row in rows:
            cycle = row["loop_cycle_ms"]
            positions = row["active_positions"]
            cells = [
                row["instance"] or "-",
                row["status"],
                _seconds(row["age_s"]),
                "-" if cycle is None else f"{cycle:.1f}",
                "-" if positions is None else str(positions),
                _decided(row, reports),
                row["reason"] or "-",
            ]
            table.append(([row["stream"]] if several else []) + cells)
        for line in _table(table):
            print(scrub(line), file=out)
    unreachable = any(r.verdict is Verdict.UNREACHABLE for r in reports)
    return EXIT_UNKNOWN if unreachable else 0


def _decided(row: dict[str, Any], reports: list[InstanceReport]) -> str:
    if row["decision_age_s"] is not None:
        return f"{row['decision_age_s']:.1f}s ago"
    has_entry = any(
        r.entry is not None
        for r in reports
        if (r.stream, r.instance) == (row["stream"], row["instance"])
    )
    return "never" if has_entry else "-"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def describe_entry(entry_id: str, fields: Any) -> str:
    """One line for one heartbeat entry, as ``tail`` prints it.

    Args:
        entry_id: The entry's stream ID.
        fields: Its fields, as XREAD returned them.

    Returns:
        The decoded figures, or the reason the entry cannot be read.
    """
    try:
        entry = decode_entry(fields)
    except MalformedEntryError as exc:
        return f"{entry_id} MALFORMED {exc}"
    decided = (
        "never"
        if entry.last_decision_ts is None
        else f"{max(0.0, entry.timestamp - entry.last_decision_ts):.1f}s"
    )
    line = (
        f"{entry_id} instance={entry.instance or '-'} status={entry.status.value} "
        f"cycle_ms={entry.loop_cycle_ms:.1f} positions={entry.active_positions_count} "
        f"pending={entry.pending_exits} decided={decided} seq={entry.seq} "
        f"lag_ms={entry.loop_lag_ms:.0f}"
    )
    if entry.reason:
        line += f" reason={entry.reason}"
    return line


async def _start_ids(
    redis: Any, streams: Sequence[str], timeout_s: float
) -> dict[str, str]:
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xrevrange(stream, "+", "-", count=1)
    replies = await asyncio.wait_for(pipe.execute(raise_on_error=False), timeout_s)
    ids: dict[str, str] = {}
    for stream, reply in zip(streams, replies, strict=True):
        if isinstance(reply, Exception):
            raise _KeyError(stream, reply)
        # A stream that does not exist yet is followed from its first entry.
        ids[stream] = _text(reply[0][0]) if reply else "0-0"
    return ids


class _KeyError(Exception):
    def __init__(self, stream: str, error: Exception) -> None:
        why = (
            "the key holds something other than a stream"
            if "WRONGTYPE" in str(error)
            else str(error)
        )
        super().__init__(f"cannot follow {stream!r}: {why}")


async def tail(
    redis: Any,
    streams: Sequence[str],
    *,
    out: TextIO,
    block_ms: int = 1000,
    limit: int | None = None,
    timeout_s: float = 2.0,
    scrub: Scrub = _same,
) -> int:
    """Print every new heartbeat of the streams as it arrives.

    Runs until interrupted (Ctrl-C), or until ``limit`` entries were printed.

    Args:
        redis: A ``redis.asyncio`` client whose socket timeout is longer than
            ``block_ms``.
        streams: Stream keys to follow.
        out: Where to print.
        block_ms: How long one XREAD waits for new entries.
        limit: Stop after this many entries; ``None`` for never.
        timeout_s: Longest wait for the first read of the streams.
        scrub: Applied to every line printed, to hide passwords.

    Returns:
        0 when stopped by ``limit``; 3 when Redis cannot be read or a key is
        not a stream.
    """
    printed = 0
    several = len(streams) > 1
    try:
        ids = await _start_ids(redis, streams, timeout_s)
        while limit is None or printed < limit:
            reply = await redis.xread(ids, block=block_ms, count=100)
            items = reply.items() if isinstance(reply, dict) else (reply or [])
            for name, entries in items:
                stream = _text(name)
                for raw_id, fields in entries:
                    entry_id = _text(raw_id)
                    ids[stream] = entry_id
                    line = describe_entry(entry_id, fields)
                    print(scrub(f"{stream} {line}" if several else line), file=out)
                    printed += 1
            out.flush()
    except _KeyError as exc:
        print(scrub(f"error: {exc}"), file=out)
        return EXIT_UNKNOWN
    except (RedisError, OSError, asyncio.TimeoutError) as exc:
        print(scrub(f"error: cannot read Redis: {type(exc).__name__}: {exc}"), file=out)
        return EXIT_UNKNOWN
    return 0


async def watch(
    redis: Any,
    streams: Sequence[str],
    pattern: str | None,
    **options: Any,
) -> int:
    """Run a `exit_heartbeat.Watchdog` until SIGINT or SIGTERM.

    Args:
        redis: A ``redis.asyncio`` client.
        streams: Stream keys to watch.
        pattern: A SCAN pattern for more streams.
        options: `exit_heartbeat.Watchdog` keyword options.

    Returns:
        0 after a clean stop.

    Raises:
        ConfigError: An option is out of range.
    """
    options.setdefault("notifier", SystemdNotifier.from_environ())
    dog = Watchdog(redis, streams=streams, pattern=pattern, **options)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if not stopping:
            stopping.append(loop.create_task(dog.stop()))

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        await dog.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0
