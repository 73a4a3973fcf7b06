"""Tests of `exit_heartbeat.testing.ManualClock`."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from exit_heartbeat.clock import LoopClock
from exit_heartbeat.testing import ManualClock


async def _sleeper(
    clock: ManualClock, delay_s: float, name: str, woke: list[tuple[str, float]]
) -> None:
    await clock.sleep(delay_s)
    woke.append((name, clock.monotonic()))


def test_manual_clock_starts_where_told() -> None:
    """monotonic and time start at the given readings."""
    clock = ManualClock(start_s=5.0, wall_s=1_700_000_000.0)

    assert clock.monotonic() == 5.0
    assert clock.time() == 1_700_000_000.0


async def test_manual_clock_advance_wakes_sleepers_in_order_on_time() -> None:
    """advance wakes each sleeper at its own deadline, earliest first."""
    clock = ManualClock(start_s=0.0)
    woke: list[tuple[str, float]] = []
    tasks = [
        asyncio.ensure_future(_sleeper(clock, delay, name, woke))
        for delay, name in [(3.0, "c"), (1.0, "a"), (2.0, "b"), (9.0, "late")]
    ]

    await clock.advance(5.0)

    assert woke == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.monotonic() == 5.0
    assert not tasks[3].done()
    tasks[3].cancel()


async def test_manual_clock_equal_deadlines_wake_in_sleep_order() -> None:
    """Sleepers due at the same moment wake in the order they went to sleep."""
    clock = ManualClock(start_s=0.0)
    woke: list[tuple[str, float]] = []
    tasks = [
        asyncio.ensure_future(_sleeper(clock, 1.0, name, woke))
        for name in ["first", "second", "third"]
    ]

    await clock.advance(1.0)
    await asyncio.gather(*tasks)

    assert [name for name, _ in woke] == ["first", "second", "third"]


async def test_manual_clock_advance_wakes_a_sleeper_started_on_the_way() -> None:
    """A sleep begun by a woken task inside the advanced span also wakes."""
    clock = ManualClock(start_s=0.0)
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            await clock.sleep(1.0)
            ticks.append(clock.monotonic())

    task = asyncio.ensure_future(ticker())
    await clock.advance(3.5)
    task.cancel()

    assert ticks == [1.0, 2.0, 3.0]


async def test_manual_clock_block_wakes_everyone_late() -> None:
    """block jumps time at once: every sleeper due in the gap wakes at its end."""
    clock = ManualClock(start_s=0.0)
    woke: list[tuple[str, float]] = []
    tasks = [
        asyncio.ensure_future(_sleeper(clock, delay, name, woke))
        for delay, name in [(1.0, "a"), (2.0, "b"), (5.0, "later")]
    ]
    await clock.settle()

    await clock.block(3.0)

    assert woke == [("a", 3.0), ("b", 3.0)]
    assert not tasks[2].done()
    tasks[2].cancel()


async def test_manual_clock_sleep_zero_returns_at_once() -> None:
    """A sleep of zero or less only yields to the loop."""
    clock = ManualClock()

    await asyncio.wait_for(clock.sleep(0), timeout=1.0)
    await asyncio.wait_for(clock.sleep(-1.0), timeout=1.0)

    assert clock.monotonic() == ManualClock().monotonic()


async def test_manual_clock_step_wall_moves_only_wall_time() -> None:
    """step_wall changes time() but neither monotonic() nor the sleepers."""
    clock = ManualClock(start_s=0.0, wall_s=1_000.0)
    woke: list[tuple[str, float]] = []
    task = asyncio.ensure_future(_sleeper(clock, 1.0, "a", woke))
    await clock.settle()

    clock.step_wall(-500.0)
    await clock.settle()

    assert clock.time() == 500.0
    assert clock.monotonic() == 0.0
    assert woke == []
    await clock.advance(1.0)
    assert task.done()
    assert woke == [("a", 1.0)]


async def test_manual_clock_cancelled_sleeper_is_skipped() -> None:
    """A sleeper cancelled before its deadline does not break later wake-ups."""
    clock = ManualClock(start_s=0.0)
    woke: list[tuple[str, float]] = []
    doomed = asyncio.ensure_future(_sleeper(clock, 1.0, "doomed", woke))
    kept = asyncio.ensure_future(_sleeper(clock, 2.0, "kept", woke))
    await clock.settle()

    doomed.cancel()
    await clock.advance(2.0)

    assert kept.done()

    assert woke == [("kept", 2.0)]


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
@pytest.mark.parametrize("method", ["advance", "block"])
async def test_manual_clock_refuses_to_move_back_or_forever(
    method: str, seconds: float
) -> None:
    """advance and block refuse a negative or endless step, saying why."""
    clock = ManualClock(start_s=0.0)

    with pytest.raises(ValueError, match=rf"ManualClock\.{method}\(\) moves time"):
        await getattr(clock, method)(seconds)

    assert clock.monotonic() == 0.0


def test_loop_clock_reads_the_loop_time() -> None:
    """LoopClock's monotonic reading is the loop's own time."""

    class Loop:
        def time(self) -> float:
            return 42.5

    clock = LoopClock(Loop())  # type: ignore[arg-type]

    assert clock.monotonic() == 42.5
    assert abs(clock.time() - time.time()) < 60.0


async def test_loop_clock_sleep_zero_yields_once() -> None:
    """LoopClock.sleep(0) lets other tasks run, then returns."""
    clock = LoopClock(asyncio.get_running_loop())
    ran: list[bool] = []

    async def other() -> None:
        ran.append(True)

    task = asyncio.ensure_future(other())
    await clock.sleep(0)

    assert ran == [True]
    await task
