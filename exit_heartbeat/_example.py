"""Running an example service: Redis, a time limit, and what it publishes.

`run_example` is the plumbing shared by the scripts in ``examples/``, kept out
of them so that each script shows its integration style and nothing else. It
parses ``--redis-url``, ``--seconds`` and ``--interval``, starts the embedded
server when no URL is given, runs the example, and prints every heartbeat
entry the example publishes while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

import redis.asyncio
import redis.exceptions
from redis.asyncio.connection import parse_url

from exit_heartbeat._embedded import EmbeddedRedis, EmbeddedRedisError
from exit_heartbeat.entry import HeartbeatEntry, decode_entry
from exit_heartbeat.errors import MalformedEntryError
from exit_heartbeat.keys import DEFAULT_STREAM
from exit_heartbeat.redaction import Redactor, redact_url

__all__ = ["ExampleOptions", "describe_entry", "run_example"]

# How often the printer looks for new entries; well under any interval.
_POLL_S = 0.1

# Longest wait for the first reply of a Redis server given by URL.
_CONNECT_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True)
class ExampleOptions:
    """What the command line asked of an example.

    Attributes:
        seconds: How long to run the service before stopping it.
        interval_s: Seconds between two heartbeats.
        stream: The stream the example publishes to and the printer reads.
        args: Every parsed argument, the example's own included.
    """

    seconds: float
    interval_s: float
    stream: str
    args: argparse.Namespace


#: An example: given a Redis client and the options, run the service for
#: ``options.seconds`` and stop it cleanly.
ExampleRun = Callable[["redis.asyncio.Redis", ExampleOptions], Awaitable[None]]


def describe_entry(entry: HeartbeatEntry) -> str:
    """Render one heartbeat entry as one line for people.

    Args:
        entry: A decoded entry.

    Returns:
        The sequence number, status, positions, cycle time, the age of the
        last decision at the time of the entry, and the reason if any.
    """
    if entry.last_decision_ts is None:
        decided = "no decision yet"
    else:
        age_s = max(0.0, entry.timestamp - entry.last_decision_ts)
        decided = f"decision_age_s={age_s:.1f}"
    line = (
        f"seq={entry.seq:<4} {entry.status.value:<8} "
        f"positions={entry.active_positions_count} "
        f"loop_cycle_ms={entry.loop_cycle_ms:.1f} {decided} "
        f"cycles={entry.cycles}"
    )
    return f"{line} reason={entry.reason}" if entry.reason else line


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a positive number of seconds"
        )
    return value


def output_closed() -> int:
    """Give up quietly because whoever read the output has gone (``| head``).

    Returns:
        The exit code, 1: the run did not finish.
    """
    # Point stdout at /dev/null, so that the flush at exit does not fail on
    # the closed pipe a second time and print a traceback.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


def redis_url_argument(text: str) -> str:
    """Check a ``--redis-url`` value for argparse; a bad one gets a reason.

    Args:
        text: The value given on the command line.

    Returns:
        The URL, unchanged.

    Raises:
        argparse.ArgumentTypeError: It is not a Redis URL; the password, if
            any, is hidden in the message.
    """
    try:
        parse_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{redact_url(text)!r} is not a Redis URL: {exc}; for example "
            f"redis://localhost:6379/0"
        ) from None
    return text


def _parser(
    description: str | None, parser: argparse.ArgumentParser | None, interval: bool
) -> argparse.ArgumentParser:
    if parser is None:
        parser = argparse.ArgumentParser(
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    parser.add_argument(
        "--redis-url",
        type=redis_url_argument,
        help="Redis server to publish to, e.g. redis://localhost:6379/0 "
        "(default: a Redis server embedded in this process)",
    )
    parser.add_argument(
        "--seconds",
        type=_positive_seconds,
        default=10.0,
        help="how long to run the service before a clean stop (default: 10)",
    )
    if interval:
        parser.add_argument(
            "--interval",
            type=_positive_seconds,
            default=1.0,
            help="seconds between two heartbeats (default: 1)",
        )
    return parser


async def _last_id(client: redis.asyncio.Redis, stream: str) -> str:
    newest = await client.xrevrange(stream, count=1)
    if not newest:
        return "0-0"
    entry_id = newest[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def _print_entries(
    client: redis.asyncio.Redis,
    stream: str,
    after_id: str,
    done: asyncio.Event,
    out: TextIO,
) -> int:
    """Print each new entry of ``stream`` until ``done`` and nothing is left."""
    printed = 0
    failing = False
    while True:
        finishing = done.is_set()
        try:
            entries: Any = await client.xrange(stream, min=f"({after_id}")
        except (redis.exceptions.RedisError, OSError) as exc:
            # The heartbeat rides out a Redis outage; so does its printer,
            # saying so once rather than every poll.
            if not failing:
                print(f"(cannot read {stream} for now: {exc})", file=out, flush=True)
            failing = True
            entries = []
        else:
            failing = False

        for entry_id, fields in entries:
            after_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            try:
                line = describe_entry(decode_entry(fields))
            except MalformedEntryError as exc:
                line = f"an entry that cannot be read: {exc}"
            print(f"{after_id}  {line}", file=out, flush=True)
            printed += 1

        if finishing:
            return printed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), _POLL_S)


async def _run(run: ExampleRun, options: ExampleOptions, url: str, out: TextIO) -> int:
    client = redis.asyncio.from_url(url, socket_timeout=_CONNECT_TIMEOUT_S)
    reader = redis.asyncio.from_url(url, socket_timeout=_CONNECT_TIMEOUT_S)
    try:
        try:
            after_id = await _last_id(reader, options.stream)
        except redis.exceptions.ResponseError as exc:
            print(f"error: {options.stream} cannot be read: {exc}", file=sys.stderr)
            return 1
        except (redis.exceptions.RedisError, OSError) as exc:
            print(
                f"error: cannot reach Redis at {redact_url(url)}: "
                f"{Redactor(url)(str(exc)).rstrip('.')}. Is the server running, "
                f"and is the URL right?",
                file=sys.stderr,
            )
            return 1

        done = asyncio.Event()
        printer = asyncio.create_task(
            _print_entries(reader, options.stream, after_id, done, out)
        )
        try:
            await run(client, options)
        finally:
            done.set()
            printed = await printer

        if printed == 0:
            print(f"no heartbeat entry was published to {options.stream}", file=out)
        return 0
    finally:
        await client.aclose()
        await reader.aclose()


def run_example(
    run: ExampleRun,
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
    parser: argparse.ArgumentParser | None = None,
    interval: bool = True,
    stream: str = DEFAULT_STREAM,
    out: TextIO | None = None,
) -> int:
    """Parse the command line, provide Redis, and run an example.

    Args:
        run: The example's coroutine function; it gets a Redis client and
            the options, runs its service for ``options.seconds`` and stops it.
        argv: The arguments; ``sys.argv[1:]`` when ``None``.
        description: Shown by ``--help``.
        parser: A parser with the example's own arguments, to which the
            common ones are added.
        interval: Whether to offer ``--interval``; an example whose service
            fixes its own interval says ``False``.
        stream: The stream the example publishes to.
        out: Where to print; standard output by default.

    Returns:
        The exit code: 0 when the example ran, 1 when Redis could not be
        used, 130 when interrupted. Bad arguments exit with 2 and a message.
    """
    out = sys.stdout if out is None else out
    args = _parser(description, parser, interval).parse_args(argv)
    options = ExampleOptions(
        seconds=args.seconds,
        interval_s=getattr(args, "interval", 1.0),
        stream=stream,
        args=args,
    )

    server: EmbeddedRedis | None = None
    url: str | None = args.redis_url
    try:
        if url is None:
            server = EmbeddedRedis().start()
            url = server.url
            print(f"Redis: a server embedded in this process at {url}", file=out)
        else:
            print(f"Redis: {redact_url(url)}", file=out)
        print(
            f"Running for {options.seconds:g}s; every heartbeat published to "
            f"{stream} follows, one a line.",
            file=out,
            flush=True,
        )
        return asyncio.run(_run(run, options, url, out))
    except EmbeddedRedisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return output_closed()
    except KeyboardInterrupt:
        return 130
    finally:
        if server is not None:
            server.stop()
