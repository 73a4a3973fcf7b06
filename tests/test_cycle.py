"""Tests of the `timed_cycle` and `decision` decorators and `cycle_stats`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import traceback
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from exit_heartbeat import CycleStats, cycle_stats, decision, timed_cycle
from exit_heartbeat import cycle as cycle_module
from exit_heartbeat.cycle import _CycleWrapper


class SteppedClock:
    """A stand-in for the performance counter and wall clock, moved by hand."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def perf(monkeypatch: pytest.MonkeyPatch) -> SteppedClock:
    """The decorators' performance counter, under the test's control."""
    counter = SteppedClock()
    monkeypatch.setattr(cycle_module, "_perf_counter", counter)
    return counter


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> SteppedClock:
    """The decorators' wall clock, under the test's control."""
    clock = SteppedClock(1_800_000_000.0)
    monkeypatch.setattr(cycle_module, "_wall_clock", clock)
    return clock


class BoomError(Exception):
    """The error the cycles under test raise."""


# -- what can be decorated ---------------------------------------------------


async def test_timed_cycle_records_async_instance_method(
    perf: SteppedClock, wall: SteppedClock
) -> None:
    """An async method's duration, finish time and count go to its instance."""

    class Service:
        @timed_cycle
        async def process_cycle(self) -> None:
            perf.now += 0.25

    service = Service()
    await service.process_cycle()

    stats = cycle_stats(service)
    assert stats.loop_cycle_ms == pytest.approx(250.0)
    assert stats.last_cycle_ts == wall.now
    assert stats.cycles == 1
    assert stats.decisions == 0
    assert stats.last_decision_ts is None


def test_timed_cycle_records_sync_instance_method(perf: SteppedClock) -> None:
    """A plain method is timed like an async one, on its own instance."""

    class Service:
        @timed_cycle
        def process_cycle(self) -> None:
            perf.now += 0.1

    first, second = Service(), Service()
    first.process_cycle()
    first.process_cycle()

    assert cycle_stats(first).cycles == 2
    assert cycle_stats(first).loop_cycle_ms == pytest.approx(100.0)
    assert cycle_stats(second).cycles == 0


async def test_timed_cycle_records_module_function_under_itself(
    perf: SteppedClock,
) -> None:
    """A decorated module function keeps its record on the function."""

    @timed_cycle
    async def run_once() -> None:
        perf.now += 0.002

    @timed_cycle
    def run_sync() -> None:
        perf.now += 0.003

    await run_once()
    run_sync()

    assert cycle_stats(run_once).loop_cycle_ms == pytest.approx(2.0)
    assert cycle_stats(run_sync).loop_cycle_ms == pytest.approx(3.0)
    assert cycle_stats(run_once).cycles == 1


def test_timed_cycle_records_staticmethod_in_either_order() -> None:
    """A staticmethod is recorded on its function whichever decorator is outer."""

    class Service:
        @timed_cycle
        @staticmethod
        def outer() -> int:
            return 1

        @staticmethod
        @timed_cycle
        def inner() -> int:
            return 2

    service = Service()
    assert (service.outer(), Service.outer(), service.inner()) == (1, 1, 2)

    assert cycle_stats(Service.outer).cycles == 2
    assert cycle_stats(Service.inner).cycles == 1
    assert cycle_stats(service).cycles == 0


def test_timed_cycle_records_classmethod_on_the_class() -> None:
    """A classmethod is recorded on its class whichever decorator is outer."""

    class Service:
        @timed_cycle
        @classmethod
        def outer(cls) -> type:
            return cls

        @classmethod
        @timed_cycle
        def inner(cls) -> type:
            return cls

    service = Service()
    assert service.outer() is Service
    assert Service.outer() is Service
    assert service.inner() is Service

    assert cycle_stats(Service).cycles == 3
    assert cycle_stats(service).cycles == 0


async def test_decision_records_async_classmethod_and_staticmethod(
    wall: SteppedClock,
) -> None:
    """`decision` works on async classmethods and staticmethods too."""

    class Service:
        @decision
        @classmethod
        async def decide_all(cls) -> str:
            return "all"

        @decision
        @staticmethod
        async def decide_one() -> str:
            return "one"

    assert await Service.decide_all() == "all"
    assert await Service().decide_one() == "one"

    assert cycle_stats(Service).last_decision_ts == wall.now
    assert cycle_stats(Service.decide_one).decisions == 1


async def test_timed_cycle_accepts_partial_callable_object_and_lambda() -> None:
    """functools.partial, callable objects (sync and async) and lambdas work."""

    async def add(a: int, b: int) -> int:
        return a + b

    class Doubler:
        def __call__(self, x: int) -> int:
            return 2 * x

    class AsyncDoubler:
        async def __call__(self, x: int) -> int:
            return 2 * x

    partial = timed_cycle(functools.partial(add, 1))
    doubler = Doubler()
    sync_object = timed_cycle(doubler)
    async_doubler = AsyncDoubler()
    async_object = timed_cycle(async_doubler)
    square = timed_cycle(lambda x: x * x)

    assert await partial(2) == 3
    assert sync_object(4) == 8
    assert await async_object(5) == 10
    assert square(3) == 9

    assert cycle_stats(doubler).cycles == 1
    assert cycle_stats(async_doubler).cycles == 1
    assert cycle_stats(square).cycles == 1


async def test_timed_cycle_times_inherited_async_call(perf: SteppedClock) -> None:
    """An object whose async __call__ comes from a base class is awaited."""

    class Base:
        async def __call__(self) -> str:
            await asyncio.sleep(0)
            perf.now += 0.04
            return "done"

    class Job(Base):
        pass

    job = Job()
    wrapped = timed_cycle(job)

    assert await wrapped() == "done"
    assert cycle_stats(job).loop_cycle_ms == pytest.approx(40.0)


def test_timed_cycle_keeps_name_doc_and_coroutine_nature() -> None:
    """The wrapper still looks like the function it wraps."""

    async def process_cycle() -> None:
        """Decide."""

    wrapped = timed_cycle(process_cycle)

    assert wrapped.__name__ == "process_cycle"
    assert wrapped.__doc__ == "Decide."
    assert asyncio.iscoroutinefunction(wrapped)


# -- what cannot be decorated -------------------------------------------------


def _sync_gen() -> Iterator[int]:
    yield 1


async def _async_gen() -> AsyncIterator[int]:
    yield 1


class _Thing:
    pass


@pytest.mark.parametrize(
    ("target", "given"),
    [
        (42, "int"),
        ("process_cycle", "str"),
        (staticmethod(42), "staticmethod"),  # type: ignore[arg-type]
    ],
)
@pytest.mark.parametrize("decorator", [timed_cycle, decision])
def test_decorators_refuse_non_callable(
    decorator: Callable[[Any], Any], target: object, given: str
) -> None:
    """A non-callable raises TypeError naming it and what is accepted."""
    with pytest.raises(TypeError) as caught:
        decorator(target)

    message = str(caught.value)
    assert given in message
    assert "not callable" in message
    assert "accepts a function or method" in message


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        (_async_gen, "an async generator"),
        (_sync_gen, "a generator"),
        (functools.partial(_sync_gen), "a generator"),
    ],
)
@pytest.mark.parametrize("decorator", [timed_cycle, decision])
def test_decorators_refuse_generator_functions(
    decorator: Callable[[Any], Any], target: object, kind: str
) -> None:
    """A generator or async generator function is refused with a reason."""
    with pytest.raises(TypeError) as caught:
        decorator(target)

    message = str(caught.value)
    assert f"{kind} function" in message
    assert "_gen" in message
    assert "accepts a function or method" in message


@pytest.mark.parametrize("decorator", [timed_cycle, decision])
def test_decorators_refuse_a_class(decorator: Callable[[Any], Any]) -> None:
    """A class is refused with its name and a pointer to its cycle method."""
    with pytest.raises(TypeError, match=r"class '_Thing'.*cycle method"):
        decorator(_Thing)


# -- stacking -------------------------------------------------------------------


async def test_decorators_stacking_order_gives_the_same_records(
    perf: SteppedClock, wall: SteppedClock
) -> None:
    """timed_cycle over decision and decision over timed_cycle record alike."""

    class TimedOuter:
        @timed_cycle
        @decision
        async def process_cycle(self) -> None:
            perf.now += 0.05

    class DecisionOuter:
        @decision
        @timed_cycle
        async def process_cycle(self) -> None:
            perf.now += 0.05

    first, second = TimedOuter(), DecisionOuter()
    await first.process_cycle()
    await second.process_cycle()

    assert cycle_stats(first) == cycle_stats(second)
    assert cycle_stats(first).decisions == 1
    assert cycle_stats(first).cycles == 1
    assert cycle_stats(first).last_decision_ts == wall.now


@pytest.mark.parametrize("order", ["timed_outer", "decision_outer"])
def test_decorators_stacking_merges_into_one_wrapper(order: str) -> None:
    """Stacked decorators leave one wrapper straight over the function."""

    def process_cycle() -> None:
        pass

    if order == "timed_outer":
        wrapped = timed_cycle(decision(process_cycle))
    else:
        wrapped = decision(timed_cycle(process_cycle))

    assert isinstance(wrapped, _CycleWrapper)
    assert wrapped.__wrapped__ is process_cycle


# -- what passes through ------------------------------------------------------


async def test_timed_cycle_returns_the_same_object() -> None:
    """The wrapped call's return value is handed back untouched."""
    result = object()

    class Service:
        @timed_cycle
        @decision
        async def process_cycle(self) -> object:
            return result

        @timed_cycle
        def plain(self) -> object:
            return result

    service = Service()

    assert await service.process_cycle() is result
    assert service.plain() is result


async def test_timed_cycle_reraises_the_same_exception_with_its_traceback() -> None:
    """A raised exception is the same object and still shows where it was raised."""
    error = BoomError("no price")

    class Service:
        @timed_cycle
        @decision
        async def process_cycle(self) -> None:
            raise error

    service = Service()
    with pytest.raises(BoomError) as caught:
        await service.process_cycle()

    assert caught.value is error
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert frames[-1] == "process_cycle"


def test_timed_cycle_reraises_sync_exception_unchanged() -> None:
    """A plain function's exception passes through unchanged too."""
    error = BoomError("bad input")

    @timed_cycle
    def process_cycle() -> None:
        raise error

    with pytest.raises(BoomError) as caught:
        process_cycle()

    assert caught.value is error
    assert cycle_stats(process_cycle).errors == 1


async def test_timed_cycle_counts_errors_and_consecutive_errors(
    perf: SteppedClock,
) -> None:
    """A call that raised is a finished cycle, an error, and makes no decision."""
    fail = True

    class Service:
        @timed_cycle
        @decision
        async def process_cycle(self) -> None:
            perf.now += 0.3
            if fail:
                raise BoomError

    service = Service()
    for _ in range(3):
        with pytest.raises(BoomError):
            await service.process_cycle()

    stats = cycle_stats(service)
    assert (stats.cycles, stats.errors, stats.consecutive_errors) == (3, 3, 3)
    assert stats.loop_cycle_ms == pytest.approx(300.0)
    assert stats.last_decision_ts is None
    assert stats.decisions == 0

    fail = False
    await service.process_cycle()

    stats = cycle_stats(service)
    assert (stats.cycles, stats.errors, stats.consecutive_errors) == (4, 3, 0)
    assert stats.decisions == 1


async def test_decision_alone_records_nothing_when_the_call_raises() -> None:
    """`decision` without `timed_cycle` records no decision for a raising call."""

    class Service:
        @decision
        def decide(self) -> None:
            raise BoomError

    service = Service()
    with pytest.raises(BoomError):
        service.decide()

    assert cycle_stats(service) == CycleStats()


@pytest.mark.parametrize("stacked", [True, False])
async def test_timed_cycle_cancellation_is_neither_success_nor_error(
    stacked: bool,
) -> None:
    """A cancelled call propagates CancelledError and counts only as cancelled."""
    started = asyncio.Event()

    async def hang(self: object) -> None:
        started.set()
        await asyncio.get_running_loop().create_future()

    class Service:
        process_cycle = timed_cycle(decision(hang) if stacked else hang)

    service = Service()
    task = asyncio.ensure_future(service.process_cycle())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    stats = cycle_stats(service)
    assert stats.cancellations == 1
    assert (stats.cycles, stats.errors, stats.consecutive_errors) == (0, 0, 0)
    assert stats.loop_cycle_ms is None
    assert stats.last_decision_ts is None


async def test_decision_cancellation_records_no_decision() -> None:
    """`decision` alone records no decision for a cancelled call."""
    started = asyncio.Event()

    class Service:
        @decision
        async def decide(self) -> None:
            started.set()
            await asyncio.get_running_loop().create_future()

    service = Service()
    task = asyncio.ensure_future(service.decide())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert cycle_stats(service).last_decision_ts is None
    assert cycle_stats(service).cancellations == 1


# -- timing -----------------------------------------------------------------------


async def test_timed_cycle_times_concurrent_calls_separately(
    perf: SteppedClock,
) -> None:
    """Two overlapping calls on one instance each measure from their own start."""
    gates = {"a": asyncio.Event(), "b": asyncio.Event()}

    class Service:
        @timed_cycle
        async def process_cycle(self, name: str) -> None:
            await gates[name].wait()

    service = Service()
    perf.now = 0.0
    first = asyncio.ensure_future(service.process_cycle("a"))
    await asyncio.sleep(0)
    perf.now = 1.0
    second = asyncio.ensure_future(service.process_cycle("b"))
    await asyncio.sleep(0)

    perf.now = 2.0
    gates["b"].set()
    await second
    assert cycle_stats(service).loop_cycle_ms == pytest.approx(1000.0)

    perf.now = 5.0
    gates["a"].set()
    await first
    assert cycle_stats(service).loop_cycle_ms == pytest.approx(5000.0)
    assert cycle_stats(service).cycles == 2


@pytest.mark.parametrize("raises", [False, True])
def test_timed_cycle_duration_never_negative(perf: SteppedClock, raises: bool) -> None:
    """A counter that steps back gives a duration of zero, not a negative one."""

    @timed_cycle
    def process_cycle() -> None:
        perf.now -= 5.0
        if raises:
            raise BoomError

    with contextlib.suppress(BoomError):
        process_cycle()

    assert cycle_stats(process_cycle).loop_cycle_ms == 0.0
    assert cycle_stats(process_cycle).max_cycle_ms == 0.0


async def test_timed_cycle_keeps_the_slowest_cycle(perf: SteppedClock) -> None:
    """A slow cycle followed by fast ones still shows as the peak."""
    durations = iter([0.9, 0.01, 0.02])

    class Service:
        @timed_cycle
        async def process_cycle(self) -> None:
            perf.now += next(durations)

    service = Service()
    for _ in range(3):
        await service.process_cycle()

    stats = cycle_stats(service)
    assert stats.loop_cycle_ms == pytest.approx(20.0)
    assert stats.max_cycle_ms == pytest.approx(900.0)


def test_decision_records_wall_clock_time(wall: SteppedClock) -> None:
    """`decision` stamps last_decision_ts with the wall clock when it returns."""

    class Service:
        @decision
        def decide(self) -> None:
            wall.now += 3.0

    service = Service()
    service.decide()

    assert cycle_stats(service).last_decision_ts == wall.now
    assert cycle_stats(service).cycles == 0


# -- what the decorators leave alone ------------------------------------------


async def test_decorators_add_no_attribute_to_class_or_instance() -> None:
    """Calling a decorated method changes neither the instance nor its class."""

    class Service:
        def __init__(self) -> None:
            self.active_positions: dict[str, int] = {}

        @timed_cycle
        @decision
        async def process_cycle(self) -> None:
            pass

    service = Service()
    instance_before = dict(vars(service))
    class_before = dict(vars(Service))

    await service.process_cycle()

    assert vars(service) == instance_before
    assert dict(vars(Service)) == class_before


async def test_timed_cycle_works_on_slots_class_with_weakref() -> None:
    """A __slots__ class with __weakref__ is recorded and collected normally."""

    class Service:
        __slots__ = ("__weakref__", "positions")

        def __init__(self) -> None:
            self.positions = 0

        @timed_cycle
        @decision
        async def process_cycle(self) -> None:
            pass

    service = Service()
    await service.process_cycle()

    assert cycle_stats(service).decisions == 1
    key = id(service)
    del service
    gc.collect()
    assert key not in cycle_module._records


async def test_timed_cycle_works_on_slots_class_without_weakref() -> None:
    """A __slots__ class without __weakref__ is recorded all the same."""

    class Service:
        __slots__ = ("positions",)

        def __init__(self) -> None:
            self.positions = 0

        @timed_cycle
        @decision
        async def process_cycle(self) -> int:
            return self.positions

    service = Service()
    assert await service.process_cycle() == 0
    assert await service.process_cycle() == 0

    assert cycle_stats(service).cycles == 2
    assert cycle_stats(service).decisions == 2


async def test_timed_cycle_does_not_keep_a_dropped_service_alive() -> None:
    """A service the user drops is collected and its record removed."""

    class Service:
        @timed_cycle
        @decision
        async def process_cycle(self) -> None:
            pass

    service = Service()
    await service.process_cycle()
    alive = weakref.ref(service)
    key = id(service)
    assert key in cycle_module._records

    del service
    gc.collect()

    assert alive() is None
    assert key not in cycle_module._records


def test_timed_cycle_unwatched_table_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Owners that cannot be weakly referenced cannot grow the side table forever."""
    monkeypatch.setattr(cycle_module, "_MAX_UNWATCHED", 3)
    monkeypatch.setattr(cycle_module, "_unwatched", {})

    class Service:
        __slots__ = ()

        @timed_cycle
        def process_cycle(self) -> None:
            pass

    services = [Service() for _ in range(5)]
    for service in services:
        service.process_cycle()

    assert len(cycle_module._unwatched) == 3
    assert cycle_stats(services[-1]).cycles == 1


# -- the snapshot -------------------------------------------------------------------


async def test_cycle_stats_is_an_immutable_snapshot() -> None:
    """cycle_stats cannot be changed and does not follow later calls."""

    class Service:
        @timed_cycle
        async def process_cycle(self) -> None:
            pass

    service = Service()
    await service.process_cycle()
    snapshot = cycle_stats(service)

    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.cycles = 10  # type: ignore[misc]
    await service.process_cycle()

    assert snapshot.cycles == 1
    assert cycle_stats(service).cycles == 2


def test_cycle_stats_of_an_unknown_owner_is_empty() -> None:
    """An owner with no decorated call gets all-zero stats, not an error."""
    assert cycle_stats(object()) == CycleStats()
    assert cycle_stats(len) == CycleStats()


async def test_cycle_stats_of_a_bound_method_are_its_instance_records() -> None:
    """cycle_stats(service.method) reads the records of the method's instance."""

    class Service:
        @timed_cycle
        async def process_cycle(self) -> None:
            return None

    service = Service()
    await service.process_cycle()
    await service.process_cycle()

    assert cycle_stats(service.process_cycle).cycles == 2
    assert cycle_stats(service.process_cycle) == cycle_stats(service)
