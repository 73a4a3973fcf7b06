"""Benchmark 4: one watchdog pass over thousands of instances.

Each instance publishes to a stream of its own. The yardstick is the cheapest
way to look at all of them with redis-py: one pipeline of ``XREVRANGE key + -
COUNT 1``, one command per stream, with no decoding and no judging. The
watchdog does more work per instance, but reads only what is new since its
last pass. Three passes are timed:

- the first pass, which has nothing to start from and reads every stream;
- a steady pass after every instance published one new entry, which is what a
  1 Hz watchdog sees of 1 Hz services;
- a quiet pass, when nothing was published since the last one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio

from benchmarks.report import Section, Settings, Table, Target
from benchmarks.server import redis_server
from exit_heartbeat import HeartbeatEntry, Status, encode_entry
from exit_heartbeat.watchdog import Watchdog

__all__ = ["run"]

_TARGET_SHARE = 0.5

# redis-py parses replies in C when hiredis is installed, in Python otherwise.
_HIREDIS = importlib.util.find_spec("hiredis") is not None
_PIPELINE_CHUNK = 2000


def _entry_fields(index: int, seq: int) -> dict[str, str]:
    now = time.time()
    entry = HeartbeatEntry(
        timestamp=now,
        status=Status.OK,
        last_decision_ts=now,
        loop_cycle_ms=1.5,
        last_cycle_ts=now,
        cycles=seq + 1,
        seq=seq,
        service="ExitBrain",
        instance=f"bench-host:{index}",
    )
    return encode_entry(entry)


async def _publish_all(client: Any, streams: Sequence[str], seq: int) -> None:
    """Add one entry to every stream, a pipeline at a time (not timed)."""
    for begin in range(0, len(streams), _PIPELINE_CHUNK):
        pipe = client.pipeline(transaction=False)
        for index in range(begin, min(begin + _PIPELINE_CHUNK, len(streams))):
            pipe.xadd(streams[index], _entry_fields(index, seq), maxlen=100)
        await pipe.execute()


async def _raw_read(client: Any, streams: Sequence[str]) -> int:
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xrevrange(stream, count=1)
    replies = await pipe.execute()
    return sum(1 for reply in replies if reply)


async def _timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await work()
    return time.perf_counter() - start, result


async def _measure_one(client: Any, count: int, repeats: int) -> dict[str, Any]:
    streams = [f"bench:scale:{count}:{index}" for index in range(count)]
    for seq in range(3):
        await _publish_all(client, streams, seq)

    raw: list[float] = []
    for _ in range(repeats):
        elapsed, found = await _timed(lambda: _raw_read(client, streams))
        raw.append(elapsed)
    assert found == count, f"the raw read found {found} of {count} streams"

    watchdog = Watchdog(
        client,
        streams=streams,
        stale_after_s=3600.0,
        forget_after_s=7200.0,
        timeout_s=30.0,
    )
    first, reports = await _timed(watchdog.check)
    judged = len(reports)

    steady: list[float] = []
    quiet: list[float] = []
    seq = 3
    # Steady and quiet passes alternate, so that both see the same machine.
    for _ in range(repeats):
        await _publish_all(client, streams, seq)
        seq += 1
        elapsed, reports = await _timed(watchdog.check)
        steady.append(elapsed)
        judged = min(judged, len(reports))
        elapsed, reports = await _timed(watchdog.check)
        quiet.append(elapsed)

    await client.delete(*streams)
    return {
        "raw": statistics.median(raw),
        "first": first,
        "steady": statistics.median(steady),
        "quiet": statistics.median(quiet),
        "judged": judged,
    }


async def _measure(port: int, counts: Sequence[int], repeats: int) -> dict[int, Any]:
    client = redis.asyncio.Redis(host="127.0.0.1", port=port, socket_timeout=60)
    try:
        return {count: await _measure_one(client, count, repeats) for count in counts}
    finally:
        await client.aclose()


def _why_missed(quiet_share: float, count: int) -> str:
    quiet = "met" if quiet_share <= _TARGET_SHARE else "missed too"
    if _HIREDIS:
        return (
            f"with one new entry in every stream, the pass decodes and checks "
            f"every field of {count:,} entries in Python, which the raw read "
            f"never does; with nothing new the target is {quiet}"
        )
    return (
        f"with one new entry in every stream, the pass must fetch and parse "
        f"as many entries as the raw read, and parsing them in Python is most "
        f"of both; with nothing new the target is {quiet}"
    )


def _where_the_time_goes() -> str:
    if _HIREDIS:
        return (
            "Where the passes go (cProfile of 10,000 streams, replies parsed "
            "in C by hiredis): about half of the steady pass is decoding and "
            "checking the new entries (`decode_entry`), the rest reading, "
            "judging and hysteresis; the quiet pass is mostly making the "
            "10,000 reports and judging each instance again."
        )
    return (
        "Where the steady pass goes (cProfile of 5,000 streams): mostly "
        "redis-py's pure-Python reply parser, line by line through asyncio's "
        "stream reader, for the 18 fields of every new entry; decoding and "
        "judging the entries is about a tenth. A C parser (hiredis, which "
        "redis-py uses when it is installed) speeds up the raw read and the "
        "watchdog alike; it was not installed for this run."
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def run(settings: Settings) -> Section:
    """Time watchdog passes over 1,000 and 10,000 instances."""
    began = time.perf_counter()
    counts = [200, 1000] if settings.quick else [1000, 10_000]
    repeats = settings.count(5, 1)
    # The watchdog logs a Status line per instance per pass at INFO; like a
    # library with no logging set up, the benchmark lets none through.
    logging.getLogger("exit_heartbeat").setLevel(logging.WARNING)
    with redis_server() as server:
        results = asyncio.run(_measure(server.port, counts, repeats))

    rows = []
    for count in counts:
        figures = results[count]
        raw = figures["raw"]
        rows.append(
            [
                f"{count:,}",
                _ms(raw),
                f"{_ms(figures['first'])} ({figures['first'] / raw:.2f})",
                f"{_ms(figures['steady'])} ({figures['steady'] / raw:.2f})",
                f"{_ms(figures['quiet'])} ({figures['quiet'] / raw:.2f})",
                f"{figures['judged']:,}",
            ]
        )
    table = Table(
        f"Time of one pass, ms (ratio to the raw read); median of {repeats}",
        [
            "instances",
            "raw pipelined XREVRANGE",
            "watchdog, first pass",
            "watchdog, one new entry each",
            "watchdog, nothing new",
            "instances judged",
        ],
        rows,
    )
    largest = results[counts[-1]]
    steady_share = largest["steady"] / largest["raw"]
    quiet_share = largest["quiet"] / largest["raw"]
    targets = [
        Target(
            f"{counts[-1]:,} instances judged in ≤ ½ the raw pipelined read",
            f"{steady_share:.2f} of it with one new entry each, "
            f"{quiet_share:.2f} with nothing new",
            steady_share <= _TARGET_SHARE and largest["judged"] >= counts[-1]
            if not settings.quick
            else None,
            ""
            if steady_share <= _TARGET_SHARE
            else _why_missed(quiet_share, counts[-1]),
        ),
    ]
    notes = [
        "The watchdog's pass covers everything it does per check: the "
        "pipelined read (one XREAD per thousand streams, from the last IDs "
        "seen), decoding each instance's newest entry, judging it, hysteresis "
        "and the listeners; its INFO logging is switched off here.",
        "The raw read only fetches and parses one entry per stream: it "
        "neither decodes nor judges.",
        _where_the_time_goes(),
    ]
    return Section(
        "Watchdog scale",
        "One process, one redis-server of its own; every instance has a "
        "stream of its own holding a few entries.",
        [table],
        targets,
        notes,
        time.perf_counter() - began,
    )
