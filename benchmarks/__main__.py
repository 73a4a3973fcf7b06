"""Run every benchmark and write the Markdown report.

``python -m benchmarks`` takes about five minutes on two cores and writes
``BENCHMARKS.md``; ``--quick`` runs each benchmark briefly (well under a
minute) to check that they still work, and ``--output`` writes elsewhere.
"""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from benchmarks import detection, overhead, publisher, schedule, watchdog_scale
from benchmarks.report import Section, Settings, machine_lines, render

_BENCHMARKS: dict[str, Callable[[Settings], Section]] = {
    "overhead": overhead.run,
    "publisher": publisher.run,
    "schedule": schedule.run,
    "watchdog": watchdog_scale.run,
    "detection": detection.run,
}


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the exit_heartbeat benchmarks and write a Markdown report.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="run each benchmark briefly, to check that it still works",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("BENCHMARKS.md"),
        help="where to write the report (default: BENCHMARKS.md)",
    )
    parser.add_argument(
        "--only",
        choices=sorted(_BENCHMARKS),
        action="append",
        help="run only this benchmark; may be repeated",
    )
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwinding, rather than dying on the spot, lets every redis-server the
    # benchmarks started be stopped on the way out.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and write the report; return the exit code."""
    options = _parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    settings = Settings(quick=options.quick)
    chosen = options.only or list(_BENCHMARKS)

    started = datetime.datetime.now(datetime.timezone.utc)
    began = time.perf_counter()
    machine = machine_lines()
    sections = []
    for name in _BENCHMARKS:
        if name not in chosen:
            continue
        print(f"benchmark {name} ...", flush=True)
        section = _BENCHMARKS[name](settings)
        print(f"benchmark {name} done in {section.seconds:.0f} s", flush=True)
        sections.append(section)

    report = render(
        sections, machine, options.quick, started, time.perf_counter() - began
    )
    options.output.write_text(report, encoding="utf-8")
    print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
