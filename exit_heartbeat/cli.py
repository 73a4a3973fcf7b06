"""The ``exit-heartbeat`` command line: watch, check, status, tail and demo.

A thin shell: it parses options, sets up logging, builds the Redis client and
calls a function of `exit_heartbeat.commands` that returns the exit code.
Whatever goes wrong ends in one plain sentence on stderr and a non-zero exit,
never a traceback, and never with a password in it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import math
import os
import sys
import textwrap
import urllib.parse
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

import redis.asyncio

from exit_heartbeat import commands
from exit_heartbeat.errors import HeartbeatError
from exit_heartbeat.keys import DEFAULT_PATTERN, DEFAULT_STREAM
from exit_heartbeat.redaction import Redactor, redact_url

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

#: Exit code when the command cannot run at all (bad option, bad URL). It is
#: UNKNOWN to Nagios-style probes: the check could not be made.
EXIT_USAGE = 3

DEFAULT_URL = "redis://localhost:6379/0"

_SCHEMES = ("redis", "rediss", "unix")

# Commands implemented outside this module, imported only when used, so that
# their dependencies stay optional: name -> (module, function, one-line help).
# The function takes the arguments after the command name and returns the
# exit code.
PLUGINS: dict[str, tuple[str, str, str]] = {
    "demo": (
        "exit_heartbeat.demo",
        "main",
        "play a scripted day of a patched service and its watchdog",
    ),
}

# syslog priorities, which journald reads from a "<N>" prefix on each line.
_PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _Parser(argparse.ArgumentParser):
    """An argument parser that exits with `EXIT_USAGE` on bad input."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _non_negative_float(text: str) -> float:
    try:
        if float(text) == 0.0:
            return 0.0
    except ValueError:
        pass
    return _positive_float(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help=(
            "Redis to read: redis://, rediss:// (TLS) or unix:// "
            f"(default: $REDIS_URL, else {DEFAULT_URL}); a password in it is "
            "never printed"
        ),
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=2.0,
        metavar="S",
        help="longest wait for one Redis round trip, in seconds (default: 2)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log debug detail to stderr",
    )


def _selection(parser: argparse.ArgumentParser, pattern: bool = True) -> None:
    parser.add_argument(
        "--stream",
        action="append",
        default=[],
        metavar="KEY",
        help=f"a heartbeat stream; repeat for several (default: {DEFAULT_STREAM})",
    )
    if pattern:
        parser.add_argument(
            "--pattern",
            metavar="GLOB",
            help=f"also every stream whose key matches, e.g. '{DEFAULT_PATTERN}'",
        )


def _judging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stale-after",
        type=_positive_float,
        default=3.0,
        metavar="S",
        help="an instance with no entry for this long is STALE (default: 3)",
    )
    parser.add_argument(
        "--stale-intervals",
        type=_positive_float,
        default=3.0,
        metavar="N",
        help=(
            "...or for this many of its own published intervals, when longer "
            "(default: 3)"
        ),
    )


def _add(
    subparsers: Any, name: str, summary: str, example: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=textwrap.fill(summary[0].upper() + summary[1:] + ".", 78),
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command and option.

    Returns:
        A parser whose result has ``command`` set to the command's name.
    """
    parser = _Parser(
        prog="exit-heartbeat",
        description=(
            "Watch the heartbeats that asyncio services publish to Redis streams."
        ),
        epilog=(
            "example:\n  exit-heartbeat check --redis-url redis://localhost:6379/0\n\n"
            "exit codes of check: 0 OK, 1 DEGRADED, 2 STALE/STOPPED/MISSING,\n"
            "3 MALFORMED/UNREACHABLE or a bad option."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )

    watch = _add(
        subparsers,
        "watch",
        "watch heartbeats until stopped, logging a status line per instance "
        "per check and every change of state",
        f"exit-heartbeat watch --pattern '{DEFAULT_PATTERN}' --quiet-ok 60 "
        "--on-alert 'notify-oncall.sh'",
    )
    _selection(watch)
    _judging(watch)
    watch.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds between two checks (default: 1)",
    )
    watch.add_argument(
        "--alert-after",
        type=_positive_int,
        default=2,
        metavar="N",
        help="non-OK checks in a row before alerting (default: 2)",
    )
    watch.add_argument(
        "--recover-after",
        type=_positive_int,
        default=2,
        metavar="N",
        help="OK checks in a row before declaring a recovery (default: 2)",
    )
    watch.add_argument(
        "--quiet-ok",
        type=_non_negative_float,
        default=0.0,
        metavar="N",
        help="log the status line of a healthy instance only every N seconds "
        "(default: 0, every check)",
    )
    watch.add_argument(
        "--alert-stream",
        metavar="KEY",
        help="XADD an entry to this stream on every alert and recovery",
    )
    watch.add_argument(
        "--on-alert",
        metavar="CMD",
        help="run this shell command on every alert and recovery; it gets "
        "EXIT_HEARTBEAT_VERDICT, _PREVIOUS, _REASON, _STREAM, _INSTANCE, _AGE_S, "
        "_AT, _TROUBLE_S, _RECOVERY and _WATCHDOG in its environment",
    )
    watch.add_argument(
        "--alert-timeout",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="kill an --on-alert command that runs longer (default: 10)",
    )
    watch.add_argument(
        "--rescan",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="seconds between two searches for --pattern streams (default: 30)",
    )
    watch.add_argument(
        "--forget-after",
        type=_positive_float,
        default=3600.0,
        metavar="S",
        help="forget an instance replaced by others whose newest entry is older "
        "(default: 3600)",
    )

    check = _add(
        subparsers,
        "check",
        "judge every instance once and exit with 0 OK, 1 DEGRADED, "
        "2 STALE/STOPPED/MISSING, 3 MALFORMED/UNREACHABLE",
        "exit-heartbeat check --stream quantum:stream:exit_brain.heartbeat --json",
    )
    _selection(check)
    _judging(check)
    check.add_argument("--json", action="store_true", help="print JSON for scripts")

    status = _add(
        subparsers,
        "status",
        "show the newest heartbeat of every instance as a table",
        f"exit-heartbeat status --pattern '{DEFAULT_PATTERN}'",
    )
    _selection(status)
    _judging(status)
    status.add_argument("--json", action="store_true", help="print JSON for scripts")

    tail = _add(
        subparsers,
        "tail",
        "print each new heartbeat as it arrives, until Ctrl-C",
        "exit-heartbeat tail --stream quantum:stream:exit_brain.heartbeat",
    )
    _selection(tail, pattern=False)
    tail.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        help="stop after N entries (default: never)",
    )

    for name, (_, _, summary) in PLUGINS.items():
        # main() hands these over before parsing; listed here for --help.
        subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def _version() -> str:
    from exit_heartbeat import __version__

    return f"exit-heartbeat {__version__}"


def _setup_logging(verbose: int, scrub: Callable[[str], str]) -> None:
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    journald = bool(os.environ.get("JOURNAL_STREAM"))
    _handler.setFormatter(_Formatter(journald, verbose > 0, scrub))
    root.addHandler(_handler)
    logging.getLogger("exit_heartbeat").setLevel(
        logging.DEBUG if verbose else logging.INFO
    )


# The handler main() installed, replaced rather than doubled by another call.
_handler: logging.Handler | None = None


class _Formatter(logging.Formatter):
    """Lines for people; for journald, a priority prefix and no timestamp."""

    def __init__(
        self, journald: bool, detailed: bool, scrub: Callable[[str], str]
    ) -> None:
        name = " %(name)s:" if detailed else ""
        if journald:
            super().__init__(f"%(levelname)s{name} %(message)s")
        else:
            super().__init__(f"%(asctime)s %(levelname)s{name} %(message)s")
        self._journald = journald
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        text = self._scrub(super().format(record))
        if self._journald:
            priority = _PRIORITIES.get(record.levelno, 6)
            text = "\n".join(f"<{priority}>{line}" for line in text.splitlines())
        return text


def _url(args: argparse.Namespace) -> str:
    url: str = args.redis_url or os.environ.get("REDIS_URL") or DEFAULT_URL
    return url


def _client(url: str, timeout_s: float) -> Any:
    """A client for ``url``, or a `HeartbeatError` that says what is wrong."""
    try:
        scheme = urllib.parse.urlsplit(url).scheme
    except ValueError as exc:
        raise HeartbeatError(f"bad Redis URL {redact_url(url)}: {exc}") from None
    if scheme not in _SCHEMES:
        raise HeartbeatError(
            f"bad Redis URL {redact_url(url)}: it must start with redis://, "
            f"rediss:// (TLS) or unix://"
        )
    try:
        # The socket timeout is a backstop behind the per-call timeouts, and
        # longer than tail's XREAD BLOCK so a quiet stream is not an error.
        return redis.asyncio.from_url(
            url,
            socket_timeout=max(5.0, 2 * timeout_s),
            socket_connect_timeout=timeout_s,
        )
    except (ValueError, TypeError) as exc:
        raise HeartbeatError(f"bad Redis URL {redact_url(url)}: {exc}") from None


def _streams(args: argparse.Namespace) -> list[str]:
    streams: list[str] = list(dict.fromkeys(args.stream))
    if not streams and not getattr(args, "pattern", None):
        streams = [DEFAULT_STREAM]
    return streams


def _command(
    args: argparse.Namespace, client: Any, scrub: Callable[[str], str]
) -> Coroutine[Any, Any, int]:
    streams = _streams(args)
    if args.command == "watch":
        return commands.watch(
            client,
            streams,
            args.pattern,
            interval_s=args.interval,
            stale_after_s=args.stale_after,
            stale_intervals=args.stale_intervals,
            alert_after=args.alert_after,
            recover_after=args.recover_after,
            quiet_ok_s=args.quiet_ok,
            alert_stream=args.alert_stream,
            on_alert=args.on_alert,
            alert_timeout_s=args.alert_timeout,
            timeout_s=args.timeout,
            rescan_s=args.rescan,
            forget_after_s=args.forget_after,
        )
    if args.command == "tail":
        return commands.tail(
            client,
            streams,
            out=sys.stdout,
            limit=args.count,
            timeout_s=args.timeout,
            scrub=scrub,
        )
    run = commands.check if args.command == "check" else commands.status
    return run(
        client,
        streams,
        args.pattern,
        out=sys.stdout,
        as_json=args.json,
        stale_after_s=args.stale_after,
        stale_intervals=args.stale_intervals,
        timeout_s=args.timeout,
        scrub=scrub,
    )


async def _run(args: argparse.Namespace, url: str, scrub: Callable[[str], str]) -> int:
    client = _client(url, args.timeout)
    if args.command == "watch":
        logger.info("redis=%s", redact_url(url))
    try:
        return await _command(args, client, scrub)
    finally:
        await client.aclose()


def _run_plugin(name: str, argv: list[str]) -> int:
    module_name, function_name, _ = PLUGINS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(
            f"exit-heartbeat: error: the {name} command is not available ({exc}); "
            f'install it with: pip install "exit_heartbeat[{name}]"',
            file=sys.stderr,
        )
        return EXIT_USAGE
    function: Callable[[list[str]], int] = getattr(module, function_name)
    try:
        return function(argv)
    except SystemExit as exc:
        # --help and bad options of the command end in SystemExit.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when
            ``None``.

    Returns:
        The exit code.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if arguments and arguments[0] in PLUGINS:
        return _run_plugin(arguments[0], arguments[1:])
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    url = _url(args)
    scrub = Redactor(url)
    _setup_logging(args.verbose, scrub)
    try:
        return asyncio.run(_run(args, url, scrub))
    except KeyboardInterrupt:
        return 0 if args.command == "tail" else 130
    except HeartbeatError as exc:
        print(scrub(f"exit-heartbeat: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        # A bug rather than bad input: one sentence, the detail with -v.
        logger.debug("unexpected error", exc_info=True)
        print(
            scrub(
                f"exit-heartbeat: error: unexpected {type(exc).__name__}: {exc} "
                f"(run again with -v for the details)"
            ),
            file=sys.stderr,
        )
        return EXIT_USAGE
