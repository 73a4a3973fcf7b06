"""``exit-heartbeat demo``: a scripted day of ExitBrain v3.5 and its watchdog.

The patched v3.5 service runs on this process's event loop; a `Watchdog`
runs beside it in a thread of its own, with its own event loop and Redis
client, so that it goes on checking when the script blocks the service's loop
outright. The script walks the service through a day: healthy, a slow cycle,
no decisions with positions open, a hung cycle, a blocked loop, recovery and
a clean stop. The watchdog's findings are printed as they happen, then a
summary of what it saw and when; the exit code is 0 only if it saw every
verdict the script expected.

Without ``--redis-url`` the demo serves Redis itself (see `EmbeddedRedis`) and
prints the URL, so that ``exit-heartbeat watch`` in a second terminal can
follow the same day.

This module also offers what the scripts in ``examples/`` share:
`run_example` and the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import ClassVar, NoReturn, TextIO

import redis.asyncio
import redis.exceptions

from exit_heartbeat._embedded import EmbeddedRedis, EmbeddedRedisError
from exit_heartbeat._example import (
    ExampleOptions,
    describe_entry,
    output_closed,
    redis_url_argument,
    run_example,
)
from exit_heartbeat._scripted import (
    DEMO_STREAM,
    Pace,
    Phase,
    ScriptedExitBrain,
    Sighting,
    day,
    matches,
    reason_keys,
)
from exit_heartbeat.redaction import Redactor, redact_url
from exit_heartbeat.verdict import InstanceReport, Verdict
from exit_heartbeat.watchdog import Transition, Watchdog

__all__ = [
    "DEMO_STREAM",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "ExampleOptions",
    "describe_entry",
    "main",
    "run_demo",
    "run_example",
]

# Longest wait for one Redis reply from the demo's own clients.
_REDIS_TIMEOUT_S = 5.0

# Longest wait of the watchdog for one check's replies. A late reply costs a
# check or two, which the fixed-rate schedule skips; a short limit would turn
# a busy machine into UNREACHABLE lines.
_WATCH_TIMEOUT_S = 1.0

# Bad usage, as for every exit-heartbeat command: UNKNOWN to Nagios-style
# probes, since nothing could be checked.
_EXIT_USAGE = 3

# Longest wait for the watchdog thread to stop once asked.
_JOIN_TIMEOUT_S = 10.0


class _Console:
    """Prints the demo's lines, in colour on a terminal, from any thread."""

    _COLOURS: ClassVar[dict[Verdict, str]] = {
        Verdict.OK: "32",
        Verdict.DEGRADED: "33",
        Verdict.STOPPED: "36",
    }

    def __init__(self, out: TextIO, colour: bool) -> None:
        self._out = out
        self._colour = colour
        self._started_at = time.monotonic()
        self._lock = threading.Lock()

    def start_clock(self) -> None:
        self._started_at = time.monotonic()

    def elapsed_s(self) -> float:
        return time.monotonic() - self._started_at

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self._colour else text

    def verdict(self, verdict: Verdict, width: int = 9) -> str:
        return self.paint(f"{verdict.value:<{width}}", self._COLOURS.get(verdict, "31"))

    def line(self, text: str = "") -> None:
        with self._lock:
            print(text, file=self._out, flush=True)

    def event(self, who: str, text: str) -> None:
        self.line(f"{self.elapsed_s():6.2f}s  {who:<8}  {text}")


class _WatchdogThread:
    """A `Watchdog` on its own thread, event loop and Redis client."""

    def __init__(self, url: str, pace: Pace, console: _Console) -> None:
        self._url = url
        self._pace = pace
        self._console = console
        self._thread = threading.Thread(
            target=self._main, name="exit_heartbeat:demo-watchdog", daemon=True
        )
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dog: Watchdog | None = None
        self._lock = threading.Lock()
        self._last_seen: tuple[object, ...] | None = None
        self._sightings: list[Sighting] = []
        self.alerts = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(_JOIN_TIMEOUT_S)

    def stop(self) -> None:
        loop, dog = self._loop, self._dog
        if loop is not None and dog is not None and self._thread.is_alive():
            stopping = asyncio.run_coroutine_threadsafe(dog.stop(), loop)
            try:
                stopping.result(_JOIN_TIMEOUT_S)
            except Exception as exc:
                self.error = self.error or exc
        if self._thread.ident is not None:
            self._thread.join(_JOIN_TIMEOUT_S)

    def seen(self) -> list[Sighting]:
        with self._lock:
            return list(self._sightings)

    def _main(self) -> None:
        try:
            asyncio.run(self._watch())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    async def _watch(self) -> None:
        pace = self._pace
        client = redis.asyncio.from_url(self._url, socket_timeout=_REDIS_TIMEOUT_S)
        try:
            dog = Watchdog(
                client,
                streams=[DEMO_STREAM],
                interval_s=pace.watch_interval_s,
                stale_after_s=pace.stale_after_s,
                # With -v, the journal's view: OK lines now and then only.
                quiet_ok_s=pace.s(5.0),
                timeout_s=_WATCH_TIMEOUT_S,
            )
            dog.add_report_listener(self._on_reports)
            dog.add_listener(self._on_transition)
            self._dog = dog
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await dog.run()
        finally:
            await client.aclose()

    def _on_reports(self, reports: Sequence[InstanceReport]) -> None:
        now_s = self._console.elapsed_s()
        for report in reports:
            if report.stream != DEMO_STREAM:
                continue
            sighting = Sighting(now_s, report.verdict, report.reason, report.age_s)
            with self._lock:
                self._sightings.append(sighting)

            # A line per change of verdict or of the rules behind it, not per
            # check: the figures move every check, the story does not.
            seen = (report.verdict, reason_keys(report.reason))
            if seen == self._last_seen:
                continue
            self._last_seen = seen
            parts = [self._console.verdict(report.verdict)]
            if report.reason:
                parts.append(report.reason + " ")
            if report.age_s is not None and report.verdict is not Verdict.STALE:
                parts.append(f"(heartbeat {report.age_s:.1f}s ago)")
            self._console.event("watchdog", " ".join(parts))

    def _on_transition(self, transition: Transition) -> None:
        if transition.stream != DEMO_STREAM or not transition.is_alert:
            return
        self.alerts += 1
        before = "-" if transition.previous is None else transition.previous.value
        text = f"{before} -> {transition.verdict.value}"
        if transition.is_recovery and transition.trouble_s is not None:
            text += f" after {transition.trouble_s:.1f}s of trouble"
        elif transition.reason:
            text += f": {transition.reason}"
        self._console.event("alert", self._console.paint(text, "1"))


def _banner(
    console: _Console, phases: list[Phase], pace: Pace, url: str, where: str
) -> None:
    total_s = sum(phase.duration_s for phase in phases)
    console.line(
        console.paint("exit-heartbeat demo", "1")
        + f": a scripted day of ExitBrain v3.5 and its watchdog, "
        f"about {total_s:.0f}s."
    )
    console.line(f"Redis: {where}")
    console.line("To watch the same day from a second terminal, run:")
    # The same limits as the demo's own watchdog, so both see the same day.
    console.line(
        f"  exit-heartbeat watch --redis-url {redact_url(url)} --stream {DEMO_STREAM} "
        f"--stale-after {pace.stale_after_s:g} --interval {pace.watch_interval_s:g} "
        f"--quiet-ok {pace.s(5.0):g}"
    )
    console.line()


async def _live(
    url: str, pace: Pace, console: _Console, where: str
) -> tuple[list[Phase], list[float], _WatchdogThread]:
    """Run the day; return its phases, when each began, and the watchdog."""
    phases = day(pace)
    began_s: list[float] = []
    client = redis.asyncio.from_url(url, socket_timeout=_REDIS_TIMEOUT_S)
    watchdog = _WatchdogThread(url, pace, console)
    try:
        # The demo's stream is its own: last run's entries would only confuse.
        await client.delete(DEMO_STREAM)
        _banner(console, phases, pace, url, where)
        console.start_clock()
        brain = ScriptedExitBrain(client, pace)
        await brain.start()
        watchdog.start()

        for number, phase in enumerate(phases, 1):
            began_s.append(console.elapsed_s())
            console.event(
                "script", console.paint(f"{number}/{len(phases)} {phase.title}", "1")
            )
            await phase.begin(brain)
            await asyncio.sleep(phase.duration_s)
    finally:
        watchdog.stop()
        await client.aclose()
    return phases, began_s, watchdog


def _summary(
    console: _Console,
    phases: list[Phase],
    began_s: list[float],
    sightings: list[Sighting],
) -> bool:
    """Print what the watchdog saw against what was expected; all seen?"""
    console.line()
    console.line("What the watchdog saw, step by step:")
    console.line(f"  {'step':<26} {'expected':<24} {'seen at':>8}  watchdog said")
    all_seen = True
    seen_s = 0.0
    for number, (phase, start_s) in enumerate(zip(phases, began_s, strict=True), 1):
        step = phase.title.split(":")[0]
        # Each verdict counts only once its step has begun and the previous
        # step's verdict was seen: the day must be seen in its order.
        since_s = max(start_s, seen_s)
        found = next(
            (s for s in sightings if s.at_s >= since_s and matches(phase, s)), None
        )
        if found is None:
            all_seen = False
            console.line(
                f"  {number}. {step:<23} {phase.expected:<24} {'never':>8}  "
                + console.paint("MISSED", "31")
            )
            continue

        seen_s = found.at_s
        said = console.verdict(found.verdict, width=0 if not found.reason else 9)
        if found.reason:
            said += f" {found.reason}"
        console.line(
            f"  {number}. {step:<23} {phase.expected:<24} {found.at_s:7.2f}s  {said}"
        )
    return all_seen


def run_demo(
    redis_url: str | None = None,
    speed: float = 1.0,
    out: TextIO | None = None,
    colour: bool | None = None,
) -> int:
    """Run the scripted day and report what the watchdog saw.

    Args:
        redis_url: The Redis server to use; ``None`` serves one from this
            process.
        speed: How much faster than the default (about 20 s) to run.
        out: Where to print; standard output by default.
        colour: Colour the output; by default only on a terminal, and never
            when ``NO_COLOR`` is set.

    Returns:
        0 when the watchdog saw every expected verdict, 1 when it missed one
        or Redis could not be used, 130 when interrupted.
    """
    out = sys.stdout if out is None else out
    if colour is None:
        colour = out.isatty() and not os.environ.get("NO_COLOR")
    pace = Pace(speed)
    console = _Console(out, colour)

    server: EmbeddedRedis | None = None
    try:
        if redis_url is None:
            server = EmbeddedRedis().start()
            redis_url = server.url
            where = f"a server embedded in this process at {redis_url}"
        else:
            where = redact_url(redis_url)
        phases, began_s, watchdog = asyncio.run(_live(redis_url, pace, console, where))
    except EmbeddedRedisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return output_closed()
    except (redis.exceptions.RedisError, OSError) as exc:
        print(
            f"error: cannot use Redis at {redact_url(redis_url or '')}: "
            f"{Redactor(redis_url)(str(exc))}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if server is not None:
            server.stop()

    if watchdog.error is not None:
        print(f"error: the watchdog failed: {watchdog.error!r}", file=sys.stderr)
    all_seen = _summary(console, phases, began_s, watchdog.seen())
    console.line()
    if all_seen and watchdog.error is None:
        console.line(
            f"The watchdog saw all {len(phases)} expected verdicts, and raised "
            f"{watchdog.alerts} alerts on the way."
        )
        return 0
    console.line("The watchdog missed an expected verdict (see MISSED above).")
    return 1


class _Parser(argparse.ArgumentParser):
    """Exits with the code every exit-heartbeat command uses for bad usage."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(_EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 0.1 <= value <= 10:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: give a factor from 0.1 to 10, such as 4"
        )
    return value


_DESCRIPTION = """\
Play a scripted day of the patched ExitBrain v3.5 service and its watchdog:
healthy, a slow cycle, no decisions, a hung cycle, a blocked event loop,
recovery and a clean stop. The watchdog's findings are printed as they happen,
then a summary; the exit code is 0 only if it saw every expected verdict.

Without --redis-url the demo serves Redis from this process and prints the
URL, so that `exit-heartbeat watch` in a second terminal can follow the day."""

_EPILOG = """\
examples:
  exit-heartbeat demo
  exit-heartbeat demo --speed 3
  exit-heartbeat demo --redis-url redis://localhost:6379/0"""


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="exit-heartbeat demo",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--redis-url",
        type=redis_url_argument,
        metavar="URL",
        help="a Redis server to run the demo on; it writes only to "
        f"{DEMO_STREAM} (default: a server embedded in this process)",
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="N",
        help="run the day N times faster, from 0.1 to 10 (default: 1, about 20 s)",
    )
    parser.add_argument(
        "--no-color",
        action="store_true",
        help="plain output even on a terminal (NO_COLOR does the same)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show the log lines of the heartbeat and the watchdog",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``exit-heartbeat demo`` with its command-line arguments.

    Args:
        argv: The arguments after ``demo``; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit code of `run_demo`; bad arguments exit with 3 and a message.
    """
    args = _parser().parse_args(argv)
    _quiet_library_logs(verbose=args.verbose)
    return run_demo(
        redis_url=args.redis_url,
        speed=args.speed,
        colour=False if args.no_color else None,
    )


def _quiet_library_logs(verbose: bool) -> None:
    # The demo prints its own account of every change; the library's log
    # lines say the same again, so they show only when asked for.
    library = logging.getLogger("exit_heartbeat")
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        library.addHandler(handler)
        library.setLevel(logging.INFO)
    else:
        library.addHandler(logging.NullHandler())
    library.propagate = False
