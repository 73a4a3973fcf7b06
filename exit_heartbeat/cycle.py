"""The `timed_cycle` and `decision` decorators and the records they keep.

Where the state lives: the decorators add nothing to the decorated class or its
instances. Each owner (the instance for a method, the class for a classmethod,
the undecorated function for a plain function or a staticmethod) gets one
`_Record` in a module-level table keyed by the owner's ``id()``. A weak
reference with a callback removes the record when the owner is collected, so a
service that the user drops is not kept alive by its record. Objects that
cannot be weakly referenced (classes whose ``__slots__`` lack ``__weakref__``)
are kept in a bounded side table instead; the README's known limitations say
what that means.

The wrappers run on every cycle of the host service, so they do the least work
that keeps the records right: one table look-up, two reads of the performance
counter and one of the wall clock per call. When both decorators are stacked,
the outer one merges with the inner one into a single wrapper, in either order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import wrapt

__all__ = ["CycleStats", "cycle_stats", "decision", "timed_cycle"]

F = TypeVar("F", bound=Callable[..., Any])

# Looked up at call time (not bound early) so that tests can swap in a clock
# that steps backwards and check that durations are clamped at zero.
_perf_counter = time.perf_counter
_wall_clock = time.time

# Records of owners that cannot be weakly referenced are dropped oldest first
# beyond this many, so that creating such objects in a loop cannot leak.
_MAX_UNWATCHED = 4096


class _Record:
    """Mutable per-owner state written by the wrappers; internal."""

    __slots__ = (
        "cancellations",
        "consecutive_errors",
        "cycles",
        "decisions",
        "errors",
        "last_cycle_ts",
        "last_decision_ts",
        "loop_cycle_ms",
        "peak_cycle_ms",
    )

    def __init__(self) -> None:
        self.loop_cycle_ms: float | None = None
        self.peak_cycle_ms = 0.0
        self.last_cycle_ts: float | None = None
        self.last_decision_ts: float | None = None
        self.cycles = 0
        self.errors = 0
        self.consecutive_errors = 0
        self.cancellations = 0
        self.decisions = 0

    def fail(self, start: float) -> None:
        """Record a call that raised: it finished, but as an error."""
        self._took((_perf_counter() - start) * 1000.0)
        self.errors += 1
        self.consecutive_errors += 1

    def report(self, elapsed_ms: float) -> None:
        """Record a cycle timed by the service itself."""
        self._took(elapsed_ms)
        self.consecutive_errors = 0

    def _took(self, elapsed_ms: float) -> None:
        # A clock that stepped back, or a NaN from a service's own timing,
        # is taken as an instant cycle rather than a negative one.
        if not elapsed_ms > 0.0:
            elapsed_ms = 0.0
        self.loop_cycle_ms = elapsed_ms
        if elapsed_ms > self.peak_cycle_ms:
            self.peak_cycle_ms = elapsed_ms
        self.last_cycle_ts = _wall_clock()
        self.cycles += 1

    def decide(self) -> None:
        """Record a decision made by a call that returned."""
        self.last_decision_ts = _wall_clock()
        self.decisions += 1

    def take_peak_ms(self) -> float:
        """Return the slowest cycle since the last call, and start anew."""
        peak = self.peak_cycle_ms
        self.peak_cycle_ms = 0.0
        return peak


_records: dict[int, _Record] = {}
_refs: dict[int, weakref.ref[Any]] = {}
_unwatched: dict[int, _Record] = {}


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    # The owner is gone. Its id may be reused by a new object only after this
    # callback ran, so removing by key cannot hit a newer owner's record.
    if _refs.get(key) is ref:
        del _refs[key]
        _records.pop(key, None)


def _record_for(owner: object) -> _Record:
    """Return the record of ``owner``, creating it on first use."""
    key = id(owner)
    record = _records.get(key)
    if record is not None:
        return record
    record = _unwatched.get(key)
    if record is not None:
        return record

    record = _Record()
    try:
        _refs[key] = weakref.ref(owner, functools.partial(_forget, key))
    except TypeError:
        if len(_unwatched) >= _MAX_UNWATCHED:
            del _unwatched[next(iter(_unwatched))]
        _unwatched[key] = record
    else:
        _records[key] = record
    return record


def _peek_record(owner: object) -> _Record | None:
    """Return the record of ``owner`` if it has one, without creating it."""
    key = id(owner)
    return _records.get(key) or _unwatched.get(key)


@dataclasses.dataclass(frozen=True)
class CycleStats:
    """A snapshot of what the decorators recorded for one owner.

    Attributes:
        loop_cycle_ms: Duration of the last finished call, ``None`` before the
            first one. Calls that raised count as finished.
        max_cycle_ms: Slowest call since the heartbeat last published.
        last_cycle_ts: Wall-clock time the last call finished.
        last_decision_ts: Wall-clock time of the last decision.
        cycles: Calls that finished, whether they returned or raised.
        errors: Calls that raised.
        consecutive_errors: Calls in a row that raised, up to the last one.
        cancellations: Calls cancelled by ``asyncio.CancelledError``.
        decisions: Calls of a `decision` function that returned.
    """

    loop_cycle_ms: float | None = None
    max_cycle_ms: float = 0.0
    last_cycle_ts: float | None = None
    last_decision_ts: float | None = None
    cycles: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    cancellations: int = 0
    decisions: int = 0


def _stats_of(record: _Record) -> CycleStats:
    return CycleStats(
        loop_cycle_ms=record.loop_cycle_ms,
        max_cycle_ms=record.peak_cycle_ms,
        last_cycle_ts=record.last_cycle_ts,
        last_decision_ts=record.last_decision_ts,
        cycles=record.cycles,
        errors=record.errors,
        consecutive_errors=record.consecutive_errors,
        cancellations=record.cancellations,
        decisions=record.decisions,
    )


def cycle_stats(owner: object) -> CycleStats:
    """Return what the decorators recorded for ``owner``.

    Args:
        owner: The instance whose decorated method ran, the class of a
            decorated classmethod, a decorated plain function, or a bound
            decorated method (which stands for its instance).

    Returns:
        An immutable snapshot; all counts are zero if nothing was recorded.
    """
    record = _peek_record(owner)
    bound_to = getattr(owner, "__self__", None)
    if record is None and bound_to is not None and callable(owner):
        record = _peek_record(bound_to)
    if record is None and callable(owner):
        record = _peek_record(_function_key(owner))
    return CycleStats() if record is None else _stats_of(record)


def _function_key(target: object) -> object:
    # Plain functions are recorded under the innermost undecorated function,
    # so every decorator in a stack, ours or not, finds the same record.
    if isinstance(target, staticmethod | classmethod):
        target = target.__func__
    try:
        return inspect.unwrap(target)  # type: ignore[arg-type]
    except ValueError:
        return target


class _CycleWrapper(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """The wrapper both decorators return; it remembers what it records."""

    # wrapt asks a subclass which type to bind with on every attribute access
    # through an instance; without this answer it raises and clears an
    # AttributeError each time, which costs more than the rest of the call.
    __bound_function_wrapper__ = wrapt.BoundFunctionWrapper

    def __init__(
        self, wrapped: Any, call: Callable[..., Any], timed: bool, decides: bool
    ) -> None:
        super().__init__(wrapped, call)
        self._self_timed = timed
        self._self_decides = decides


def _owner_record(owner: object) -> _Record:
    record = _records.get(id(owner))
    return _record_for(owner) if record is None else record


def _sync_call(key: object, timed: bool, decides: bool) -> Callable[..., Any]:
    if not timed:

        def decides_only(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            result = wrapped(*args, **kwargs)
            _owner_record(key if instance is None else instance).decide()
            return result

        return decides_only

    def timed_call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        # The table look-up and the bookkeeping are written out here rather
        # than called: this runs on every cycle of the host service, where a
        # Python call costs a tenth of the whole wrapper.
        owner = key if instance is None else instance
        record = _records.get(id(owner))
        if record is None:
            record = _record_for(owner)
        start = _perf_counter()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException:
            record.fail(start)
            raise

        elapsed_ms = (_perf_counter() - start) * 1000.0
        if elapsed_ms < 0.0:
            elapsed_ms = 0.0
        now = _wall_clock()
        record.loop_cycle_ms = elapsed_ms
        if elapsed_ms > record.peak_cycle_ms:
            record.peak_cycle_ms = elapsed_ms
        record.last_cycle_ts = now
        record.cycles += 1
        record.consecutive_errors = 0
        if decides:
            record.last_decision_ts = now
            record.decisions += 1
        return result

    return timed_call


def _async_call(key: object, timed: bool, decides: bool) -> Callable[..., Any]:
    if not timed:

        async def decides_only(
            wrapped: Any, instance: Any, args: Any, kwargs: Any
        ) -> Any:
            owner = key if instance is None else instance
            try:
                result = await wrapped(*args, **kwargs)
            except asyncio.CancelledError:
                _owner_record(owner).cancellations += 1
                raise
            _owner_record(owner).decide()
            return result

        return decides_only

    async def timed_call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        # Written out like the synchronous one, for the same reason.
        owner = key if instance is None else instance
        record = _records.get(id(owner))
        if record is None:
            record = _record_for(owner)
        start = _perf_counter()
        try:
            result = await wrapped(*args, **kwargs)
        except asyncio.CancelledError:
            record.cancellations += 1
            raise
        except BaseException:
            record.fail(start)
            raise

        elapsed_ms = (_perf_counter() - start) * 1000.0
        if elapsed_ms < 0.0:
            elapsed_ms = 0.0
        now = _wall_clock()
        record.loop_cycle_ms = elapsed_ms
        if elapsed_ms > record.peak_cycle_ms:
            record.peak_cycle_ms = elapsed_ms
        record.last_cycle_ts = now
        record.cycles += 1
        record.consecutive_errors = 0
        if decides:
            record.last_decision_ts = now
            record.decisions += 1
        return result

    return timed_call


def _describe(target: object) -> str:
    # A partial has no name of its own; the function it binds is the clue.
    inner = target.func if isinstance(target, functools.partial) else target
    name = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    return f"{type(target).__name__} {name!r}"


def _is_async(target: object) -> bool:
    """Tell a coroutine function, or its partial or callable object, apart."""
    if isinstance(target, staticmethod | classmethod):
        target = target.__func__
    if inspect.iscoroutinefunction(target):
        return True
    if inspect.isfunction(target) or isinstance(target, functools.partial):
        return False
    # A callable object is async when its class's __call__ is, inherited or not.
    return inspect.iscoroutinefunction(type(target).__call__)


def _check_target(decorator: str, target: object) -> None:
    accepted = (
        "it accepts a function or method, async or not, including a "
        "staticmethod, a classmethod, a functools.partial or a callable object"
    )
    inner = target
    if isinstance(target, staticmethod | classmethod):
        inner = target.__func__
    if not callable(inner):
        raise TypeError(
            f"@{decorator} was applied to {_describe(target)}, which is not "
            f"callable; {accepted}."
        )
    if isinstance(inner, type):
        raise TypeError(
            f"@{decorator} was applied to the class {inner.__qualname__!r}; "
            f"decorate the class's cycle method instead."
        )
    if inspect.isasyncgenfunction(inner) or inspect.isgeneratorfunction(inner):
        kind = "a generator"
        if inspect.isasyncgenfunction(inner):
            kind = "an async generator"
        raise TypeError(
            f"@{decorator} was applied to {_describe(inner)}, {kind} function: "
            f"calling it only creates the generator, so there is no cycle to "
            f"time. Decorate the function that runs one whole cycle; {accepted}."
        )


def _decorate(target: Any, decorator: str, timed: bool, decides: bool) -> Any:
    _check_target(decorator, target)

    if isinstance(target, _CycleWrapper):
        # Stacked decorators become one wrapper over the original target, so
        # a call pays for one wrapper and one record look-up, not two.
        timed = timed or target._self_timed
        decides = decides or target._self_decides
        target = target.__wrapped__

    key = _function_key(target)
    make = _async_call if _is_async(target) else _sync_call
    return _CycleWrapper(target, make(key, timed, decides), timed, decides)


def timed_cycle(func: F) -> F:
    """Time every call of a service's cycle function.

    Records, for the owner, the duration of the last finished call
    (``loop_cycle_ms``, on a monotonic clock, never negative), when it finished
    (``last_cycle_ts``), and counts of cycles, errors, consecutive errors and
    cancellations, plus the slowest cycle since the heartbeat last published.
    Return values and exceptions pass through untouched; a cancelled call is
    counted as a cancellation, neither a success nor an error.

    Args:
        func: A function or method, ``async def`` or plain, including a
            staticmethod or classmethod.

    Returns:
        The wrapped function, usable exactly like ``func``.

    Raises:
        TypeError: ``func`` is not callable, is a class, or is a generator or
            async generator function.
    """
    wrapped: F = _decorate(func, "timed_cycle", timed=True, decides=False)
    return wrapped


def decision(func: F) -> F:
    """Record a decision each time a call of ``func`` returns normally.

    Sets ``last_decision_ts`` to the wall-clock time for the owner. A call that
    raises or is cancelled records no decision.

    Args:
        func: A function or method, ``async def`` or plain, including a
            staticmethod or classmethod.

    Returns:
        The wrapped function, usable exactly like ``func``.

    Raises:
        TypeError: ``func`` is not callable, is a class, or is a generator or
            async generator function.
    """
    wrapped: F = _decorate(func, "decision", timed=False, decides=True)
    return wrapped
