"""What a benchmark returns, and the Markdown report made of all of them."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata

__all__ = [
    "Section",
    "Settings",
    "Table",
    "Target",
    "machine_lines",
    "render",
]


@dataclasses.dataclass(frozen=True)
class Settings:
    """How long and how thoroughly to measure.

    Attributes:
        quick: A smoke run that keeps the code from rotting: every benchmark
            runs, briefly, and its figures are not worth publishing.
    """

    quick: bool = False

    def pick(self, full: float, quick: float) -> float:
        """Return ``full`` for a full run and ``quick`` for a quick one."""
        return quick if self.quick else full

    def count(self, full: int, quick: int) -> int:
        """Return ``full`` for a full run and ``quick`` for a quick one."""
        return quick if self.quick else full


@dataclasses.dataclass(frozen=True)
class Table:
    """One Markdown table: a caption, column headers and rows of text."""

    caption: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclasses.dataclass(frozen=True)
class Target:
    """A target of the specification and how this run did against it.

    Attributes:
        goal: The target in words, e.g. ``both stacked add <= 1.0 us``.
        measured: What this run measured, in words.
        met: Whether the target was met; ``None`` when it could not be
            measured in this run.
        comment: By how much it was missed and why, or any caveat.
    """

    goal: str
    measured: str
    met: bool | None
    comment: str = ""


@dataclasses.dataclass(frozen=True)
class Section:
    """Everything one benchmark reports."""

    title: str
    method: str
    tables: Sequence[Table]
    targets: Sequence[Target] = ()
    notes: Sequence[str] = ()
    seconds: float = 0.0


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _redis_server_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "not installed"
    output = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout
    for word in output.split():
        if word.startswith("v="):
            return word[2:]
    return output.strip() or "unknown"


def _wrapt_flavour() -> str:
    import wrapt

    # wrapt falls back to pure Python when its C extension is missing, which
    # would make every wrapper figure several times larger.
    extension = getattr(wrapt, "_wrappers", None)
    compiled = getattr(extension, "FunctionWrapper", None) is wrapt.FunctionWrapper
    return "C extension" if compiled else "pure Python"


def machine_lines() -> list[str]:
    """Describe the machine and the software the figures were taken with."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return [
        f"- CPU: {_cpu_model()}, {os.cpu_count()} logical cores",
        f"- System: {platform.system()} {platform.release()}, "
        f"load average {load[0]:.2f} at the start (the machine is shared)",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- exit_heartbeat {_version('exit_heartbeat')}, "
        f"wrapt {_version('wrapt')} ({_wrapt_flavour()}), "
        f"redis-py {_version('redis')}, "
        f"redis-server {_redis_server_version()}, "
        f"hiredis {_version('hiredis')} (redis-py parses replies in C with it, "
        f"in Python without)",
        f"- pyperf {_version('pyperf')}, "
        f"prometheus-client {_version('prometheus-client')}",
    ]


def _markdown_table(table: Table) -> list[str]:
    lines = [f"**{table.caption}**", ""] if table.caption else []
    lines.append("| " + " | ".join(table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in table.rows)
    lines.append("")
    return lines


def _verdict(target: Target) -> str:
    if target.met is None:
        return "not measured"
    return "met" if target.met else "**missed**"


def _section_lines(number: int, section: Section) -> list[str]:
    lines = [f"## {number}. {section.title}", "", section.method, ""]
    for table in section.tables:
        lines.extend(_markdown_table(table))

    if section.targets:
        lines.extend(["| target | this run | verdict |", "|---|---|---|"])
        for target in section.targets:
            measured = target.measured
            if target.comment:
                measured = f"{measured}; {target.comment}"
            lines.append(f"| {target.goal} | {measured} | {_verdict(target)} |")
        lines.append("")

    lines.extend(f"- {note}" for note in section.notes)
    if section.notes:
        lines.append("")
    lines.append(f"_This benchmark took {section.seconds:.0f} s._")
    lines.append("")
    return lines


def render(
    sections: Sequence[Section],
    machine: Sequence[str],
    quick: bool,
    started: datetime.datetime,
    seconds: float,
) -> str:
    """Make the whole Markdown report.

    Args:
        sections: What each benchmark returned, in order.
        machine: Lines from `machine_lines`, taken before the run.
        quick: Whether this was a quick run, whose figures mean little.
        started: When the run began, in UTC.
        seconds: How long the whole run took.

    Returns:
        The report's text.
    """
    command = " ".join(["python -m benchmarks", *sys.argv[1:]]).strip()
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks`; do not edit by hand. Install with "
        '`pip install -e ".[bench]"`; the run starts a `redis-server` of its '
        "own on a free port and stops it at the end.",
        "",
        "The machine is shared and noisy, so absolute times move from run to "
        "run; the ratios, taken within one run, are the figures to compare.",
        "",
    ]
    if quick:
        lines.extend(
            [
                "> **Quick run**: every benchmark ran, but too briefly for its "
                "figures to mean anything. Run without `--quick` to publish.",
                "",
            ]
        )
    lines.extend(
        [
            f"Run on {started:%Y-%m-%d %H:%M} UTC with `{command}`, "
            f"in {seconds:.0f} s.",
            "",
            *machine,
            "",
        ]
    )
    summary = [
        (number, section, target)
        for number, section in enumerate(sections, start=1)
        for target in section.targets
    ]
    if summary:
        lines.extend(["## Targets at a glance", ""])
        lines.extend(["| # | target | this run | verdict |", "|---|---|---|---|"])
        for number, _, target in summary:
            lines.append(
                f"| {number} | {target.goal} | {target.measured} | {_verdict(target)} |"
            )
        lines.append("")
    for number, section in enumerate(sections, start=1):
        lines.extend(_section_lines(number, section))
    return "\n".join(lines).rstrip() + "\n"
