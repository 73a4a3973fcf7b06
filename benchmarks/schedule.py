"""Benchmark 3: how closely beats keep to their 1 Hz schedule.

Two services beat at 1 Hz for a minute, each in a process of its own so that
they run at the same time without sharing an event loop: one on an idle loop,
one on a loop that a busy task keeps 50% occupied (5 ms of computation, then
5 ms asleep, over and over). The moment of each beat is taken by wrapping the
heartbeat's clock: the loop's monotonic time at which each entry is stamped.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio

from benchmarks.report import Section, Settings, Table, Target
from benchmarks.server import redis_server
from exit_heartbeat import LoopClock, attach_heartbeat, decision, timed_cycle

__all__ = ["run"]

_INTERVAL_S = 1.0
_DRIFT_TARGET_MS = 5.0
_P99_TARGET_MS = 3.0
_BUSY_SLICE_S = 0.005


class _StampingClock(LoopClock):
    """The loop's clock, noting the loop time whenever an entry is stamped."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.stamps: list[float] = []

    def time(self) -> float:
        """Unix time, as the entry gets it; the loop time is kept aside."""
        self.stamps.append(self.monotonic())
        return super().time()


class _Service:
    """A service that has run one cycle and holds no positions."""

    def __init__(self) -> None:
        self.active_positions: dict[str, object] = {}

    @timed_cycle
    @decision
    async def process_cycle(self) -> None:
        await asyncio.sleep(0)


async def _keep_busy(stop: asyncio.Event) -> None:
    # Half of every 10 ms the loop computes and cannot serve a timer.
    while not stop.is_set():
        until = time.perf_counter() + _BUSY_SLICE_S
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(_BUSY_SLICE_S)


async def _beat(port: int, busy: bool, seconds: float) -> dict[str, Any]:
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    stop = asyncio.Event()
    busy_task = asyncio.create_task(_keep_busy(stop)) if busy else None
    try:
        service = _Service()
        await service.process_cycle()
        clock = _StampingClock(asyncio.get_running_loop())
        heartbeat = attach_heartbeat(
            service,
            client,
            stream=f"bench:schedule:{'busy' if busy else 'idle'}",
            interval_s=_INTERVAL_S,
            stall_after_s=3600.0,
            clock=clock,
        )
        await asyncio.sleep(seconds + _INTERVAL_S / 2)
        await heartbeat.stop()
        # The last stamp is the final STOPPED entry, off the schedule.
        return {
            "stamps": clock.stamps[:-1],
            "published": heartbeat.published,
            "skipped": heartbeat.skipped,
        }
    finally:
        stop.set()
        if busy_task is not None:
            await busy_task
        await client.aclose()


def _worker(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.schedule")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--busy", action="store_true")
    parser.add_argument("--seconds", type=float, required=True)
    options = parser.parse_args(argv)
    result = asyncio.run(_beat(options.port, options.busy, options.seconds))
    print(json.dumps(result))


def _stats(stamps: Sequence[float]) -> dict[str, float]:
    """Period, deviation from the ideal grid, and drift, in ms."""
    if len(stamps) < 2:
        raise RuntimeError(f"the heartbeat beat {len(stamps)} times, not enough")
    first = stamps[0]
    deviations_ms = [
        (stamp - (first + index * _INTERVAL_S)) * 1000.0
        for index, stamp in enumerate(stamps)
    ]
    periods = [b - a for a, b in itertools.pairwise(stamps)]
    ordered = sorted(abs(d) for d in deviations_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "beats": len(stamps),
        "mean_period_ms": statistics.fmean(periods) * 1000.0,
        "median_ms": statistics.median(ordered),
        "p99_ms": p99,
        "max_ms": ordered[-1],
        "drift_ms": deviations_ms[-1],
    }


def run(settings: Settings) -> Section:
    """Run an idle and a busy heartbeat side by side and compare their beats."""
    began = time.perf_counter()
    seconds = settings.pick(60.0, 4.0)
    root = Path(__file__).resolve().parent.parent
    with redis_server() as server:
        command = [
            sys.executable,
            "-m",
            "benchmarks.schedule",
            "--port",
            str(server.port),
            "--seconds",
            str(seconds),
        ]
        workers = {
            mode: subprocess.Popen(
                command + (["--busy"] if mode == "busy" else []),
                cwd=root,
                stdout=subprocess.PIPE,
                text=True,
            )
            for mode in ("idle", "busy")
        }
        results = {}
        for mode, worker in workers.items():
            output, _ = worker.communicate(timeout=seconds + 60)
            if worker.returncode != 0:
                raise RuntimeError(f"the {mode} schedule worker failed")
            results[mode] = json.loads(output)

    rows = []
    stats = {}
    for mode, label in (("idle", "idle loop"), ("busy", "loop 50% busy")):
        figures = _stats(results[mode]["stamps"])
        stats[mode] = figures
        rows.append(
            [
                label,
                str(figures["beats"]),
                f"{figures['mean_period_ms']:.3f}",
                f"{figures['median_ms']:.2f}",
                f"{figures['p99_ms']:.2f}",
                f"{figures['max_ms']:.2f}",
                f"{figures['drift_ms']:+.2f}",
                str(results[mode]["skipped"]),
            ]
        )
    table = Table(
        f"{seconds:g} s at 1 Hz, both loops at once (deviations in ms from "
        f"the ideal grid set by the first beat)",
        [
            "loop",
            "beats",
            "mean period (ms)",
            "median \\|deviation\\|",
            "p99 \\|deviation\\|",
            "max \\|deviation\\|",
            "drift at the end",
            "slots skipped",
        ],
        rows,
    )
    idle = stats["idle"]
    targets = [
        Target(
            f"idle loop: drift < {_DRIFT_TARGET_MS:g} ms over {seconds:g} s",
            f"{idle['drift_ms']:+.2f} ms",
            abs(idle["drift_ms"]) < _DRIFT_TARGET_MS,
        ),
        Target(
            f"idle loop: p99 deviation < {_P99_TARGET_MS:g} ms",
            f"{idle['p99_ms']:.2f} ms",
            idle["p99_ms"] < _P99_TARGET_MS,
        ),
    ]
    notes = [
        "The schedule is fixed-rate: beat _n_ is due at `start + n * "
        "interval_s`, so a late beat does not push the later ones back, and "
        "the drift stays the lateness of the last beat.",
        "On the busy loop a beat can only start when the busy slice ends, so "
        "its deviation is spread over the slice length "
        f"({_BUSY_SLICE_S * 1000:g} ms); no target applies there.",
        "An idle loop still wakes a little late: asyncio rounds its wait up "
        "to the next millisecond, and the process must then be scheduled on "
        "a core shared with the busy loop and with whatever else the machine "
        "runs. With one beat a second, the p99 of a minute is the second "
        "worst beat, so a single scheduling delay decides it.",
    ]
    return Section(
        "Schedule accuracy",
        "Deviation of each beat from its ideal moment, on the loop's own "
        "monotonic clock.",
        [table],
        targets,
        notes,
        time.perf_counter() - began,
    )


if __name__ == "__main__":
    _worker(sys.argv[1:])
