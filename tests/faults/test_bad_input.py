"""Bad input at the edges of the library: odd callables and odd options.

A mistake made when the service is written must show up when it starts, as a
plain `TypeError` or `ValueError` that names what was wrong, and never later
in the background while positions are open.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import fakeredis
import pytest

from exit_heartbeat import (
    ConfigError,
    attach_heartbeat,
    cycle_stats,
    decision,
    timed_cycle,
)


def _stack(target: Any) -> Any:
    # Both decorators, as users write them on a cycle method.
    return timed_cycle(decision(target))


async def _add(a: int, b: int) -> int:
    return a + b


class _SyncCall:
    def __call__(self, x: int) -> int:
        return x + 1


class _AsyncCall:
    async def __call__(self, x: int) -> int:
        return x + 1


def _numbers() -> Iterator[int]:
    yield 1


async def _async_numbers() -> AsyncIterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("make", "is_async"),
    [
        (lambda: functools.partial(_add, 1), True),
        (_SyncCall, False),
        (_AsyncCall, True),
        (lambda: lambda x: x + 1, False),
    ],
    ids=["partial", "callable-object", "async-callable-object", "lambda"],
)
async def test_decorators_work_on_unusual_callables(
    make: Callable[[], Any], is_async: bool
) -> None:
    """A partial, a callable object or a lambda is timed and counted as a decision."""
    target = make()
    wrapped = _stack(target)

    result = wrapped(2)
    if is_async:
        result = await result

    assert result == 3
    stats = cycle_stats(target)
    assert stats.cycles == 1
    assert stats.decisions == 1


@pytest.mark.parametrize(
    ("target", "words"),
    [
        (_numbers, "generator function"),
        (_async_numbers, "async generator function"),
        (_SyncCall(), None),
        (42, "not callable"),
        (_SyncCall, "class"),
    ],
    ids=["generator", "async-generator", "ok-object", "int", "class"],
)
@pytest.mark.parametrize("decorator", [timed_cycle, decision])
def test_decorators_refuse_what_they_cannot_time_when_applied(
    decorator: Callable[[Any], Any], target: Any, words: str | None
) -> None:
    """Generators, non-callables and classes raise TypeError at decoration time."""
    if words is None:
        decorator(target)
        return
    with pytest.raises(TypeError, match=words) as caught:
        decorator(target)
    assert f"@{decorator.__name__}" in str(caught.value)


class _Service:
    def __init__(self) -> None:
        self.active_positions: dict[str, int] = {}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("interval_s", 0),
        ("interval_s", -1.0),
        ("interval_s", float("nan")),
        ("interval_s", float("inf")),
        ("interval_s", True),
        ("timeout_s", 1.5),
        ("timeout_s", -0.1),
        ("maxlen", 0),
        ("maxlen", -10),
        ("maxlen", 2.5),
        ("max_cycle_ms", -1.0),
        ("decision_timeout_s", -10.0),
        ("stall_after_s", 0),
        ("max_consecutive_errors", 0),
        ("max_consecutive_errors", -3),
        ("max_loop_lag_ms", -250.0),
        ("stream", ""),
    ],
)
async def test_attach_heartbeat_refuses_option_out_of_range(
    fake_redis: fakeredis.aioredis.FakeRedis, option: str, value: object
) -> None:
    """An option out of range is a ValueError naming it, and nothing starts."""
    tasks_before = asyncio.all_tasks()
    options: dict[str, Any] = {option: value}

    with pytest.raises(ValueError, match=option) as caught:
        attach_heartbeat(_Service(), fake_redis, **options)

    assert isinstance(caught.value, ConfigError)
    assert asyncio.all_tasks() == tasks_before
    assert await fake_redis.keys("*") == []
