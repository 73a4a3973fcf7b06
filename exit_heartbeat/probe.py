"""Reading a service: positions, decisions and cycles, however it keeps them.

A service is read from three places, in this order of preference: the records
of its `timed_cycle` and `decision` methods; attributes it keeps itself
(``last_decision_ts``, ``_last_cycle_ms``), so that an unchanged service can be
watched; and the counters given as options (``positions``, ``pending_exits``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Sized
from typing import Any

from exit_heartbeat.cycle import _CycleWrapper, _function_key, _peek_record
from exit_heartbeat.errors import AttachError

__all__ = ["Counter", "ServiceProbe", "ServiceReading"]

#: How to count something on a service: an attribute name, or a function of
#: the service. An attribute may hold a sized collection or a whole number.
Counter = str | Callable[[Any], Any]

# Attribute names an existing service may already keep its figures in.
_DECISION_ATTRS = ("last_decision_ts",)
_CYCLE_MS_ATTRS = ("_last_cycle_ms", "last_cycle_ms", "loop_cycle_ms")
_CYCLE_TS_ATTRS = ("last_cycle_ts",)


@dataclasses.dataclass(frozen=True)
class ServiceReading:
    """What one read of a service found.

    Attributes:
        active_positions: Open positions.
        pending_exits: Exits decided and not yet done.
        last_decision_ts: Wall time of the last decision, ``None`` if none.
        loop_cycle_ms: Duration of the last cycle, ``None`` if unknown.
        peak_cycle_ms: Slowest cycle since the previous read that asked for it.
        last_cycle_ts: Wall time the last cycle finished, ``None`` if unknown.
        cycles: Finished cycles, as far as known.
        errors: Cycles that raised.
        consecutive_errors: Cycles in a row that raised.
    """

    active_positions: int
    pending_exits: int
    last_decision_ts: float | None
    loop_cycle_ms: float | None
    peak_cycle_ms: float
    last_cycle_ts: float | None
    cycles: int
    errors: int
    consecutive_errors: int


def _as_count(what: str, value: Any) -> int:
    if isinstance(value, Sized) and not isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{what} must be a whole number or a sized collection, "
            f"got {type(value).__name__}"
        )
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise TypeError(f"{what} must be a whole number, got {value!r}")
    if value < 0:
        raise TypeError(f"{what} must not be negative, got {value!r}")
    return int(value)


def _as_time(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _first_attr(service: object, names: tuple[str, ...]) -> Any:
    for name in names:
        value = getattr(service, name, None)
        if value is not None:
            return value
    return None


def _decorated_members(service: object) -> list[tuple[object, _CycleWrapper]]:
    """The class's decorated members, each with the wrapper inside it."""
    found = []
    for klass in type(service).__mro__:
        for member in vars(klass).values():
            # type(), not isinstance(): a wrapper passes itself off as the
            # staticmethod or classmethod it wraps.
            wrapper = member
            if issubclass(type(member), staticmethod | classmethod):
                wrapper = member.__func__
            if isinstance(wrapper, _CycleWrapper):
                found.append((member, wrapper))
    return found


def _has_timed_method(service: object) -> bool:
    return any(wrapper._self_timed for _, wrapper in _decorated_members(service))


def _record_owners(service: object) -> tuple[object, ...]:
    """Where the decorators keep this service's records, best first.

    A method records under its instance, but a decorated classmethod records
    under the class and a staticmethod under its function; a service whose
    cycle is one of those must be read there, or it would look stalled.
    """
    owners: list[object] = [service]
    for member, wrapper in _decorated_members(service):
        kinds = (type(member), type(wrapper.__wrapped__))
        if any(issubclass(kind, classmethod) for kind in kinds):
            owner: object = type(service)
        elif any(issubclass(kind, staticmethod) for kind in kinds):
            owner = _function_key(wrapper)
        else:
            continue
        if all(owner is not known for known in owners):
            owners.append(owner)
    return tuple(owners)


class ServiceProbe:
    """Reads a service's figures; built once at attach time, read every beat."""

    def __init__(
        self,
        service: object,
        positions: Counter | None = None,
        pending_exits: Counter | None = None,
        tracks_cycles: bool | None = None,
    ) -> None:
        """Check that ``service`` can be read, and remember how.

        Args:
            service: The service to read.
            positions: How to count open positions. Default: the length of
                ``service.active_positions``, or its value if it is a number.
            pending_exits: How to count pending exits. Default:
                ``service.pending_exits`` when present, else 0.
            tracks_cycles: Whether the service reports its cycles; found out
                from its decorated methods and attributes when ``None``.

        Raises:
            AttachError: The service cannot be read as configured; the message
                says which option to pass.
        """
        self._service = service
        self._owners = _record_owners(service)
        name = type(service).__name__
        self._positions = self._counter(
            "positions", positions, "active_positions", required=True
        )
        self._pending = self._counter(
            "pending_exits", pending_exits, "pending_exits", required=False
        )
        if tracks_cycles is None:
            # The attribute counts even while it is still None: a service may
            # set it only once its first cycle has finished.
            tracks_cycles = _has_timed_method(service) or any(
                hasattr(service, name) for name in _CYCLE_TS_ATTRS
            )
        self.tracks_cycles = tracks_cycles

        try:
            self.read(take_peak=False)
        except Exception as exc:
            raise AttachError(
                f"cannot read the service {name}: {exc}. Pass positions= (an "
                f"attribute name or a function of the service) and, if needed, "
                f"pending_exits= so that both give whole numbers."
            ) from exc

    def _counter(
        self, option: str, given: Counter | None, default: str, required: bool
    ) -> Callable[[], int]:
        service = self._service
        what = f"{option} of {type(service).__name__}"
        if given is None:
            if not hasattr(service, default):
                if required:
                    raise AttachError(
                        f"cannot count the open positions of "
                        f"{type(service).__name__}: it has no {default!r} "
                        f"attribute. Pass positions='attribute_name' or "
                        f"positions=lambda service: <count>."
                    )
                return lambda: 0
            given = default
        if isinstance(given, str):
            if not hasattr(service, given):
                raise AttachError(
                    f"{option}={given!r}: {type(service).__name__} has no "
                    f"attribute {given!r}. Give the name of an attribute that "
                    f"holds a number or a collection, or a function."
                )
            attr = given
            return lambda: _as_count(what, getattr(service, attr))
        if inspect.iscoroutinefunction(given):
            # The count is read on every beat, inside the publisher; an
            # awaitable there would never be awaited.
            raise AttachError(
                f"{option} must be a plain function of the service, not an "
                f"async one: keep the count in an attribute and pass its name."
            )
        if callable(given):
            count = given
            return lambda: _as_count(what, count(service))
        raise AttachError(
            f"{option} must be an attribute name or a function of the service, "
            f"got {type(given).__name__}"
        )

    def read(self, take_peak: bool = True) -> ServiceReading:
        """Read the service now.

        Args:
            take_peak: Reset the slowest-cycle figure after reading it, as the
                publisher does once per beat.

        Returns:
            The figures found.

        Raises:
            Exception: Whatever the service's own counters raise, or
                ``TypeError`` when they give something that is not a count.
        """
        service = self._service
        active = self._positions()
        pending = self._pending()

        decided = _as_time(_first_attr(service, _DECISION_ATTRS))
        cycle_ms = _first_attr(service, _CYCLE_MS_ATTRS)
        loop_cycle_ms = (
            float(cycle_ms)
            if isinstance(cycle_ms, int | float)
            and not isinstance(cycle_ms, bool)
            and math.isfinite(cycle_ms)
            and cycle_ms >= 0
            else None
        )
        last_cycle_ts = _as_time(_first_attr(service, _CYCLE_TS_ATTRS))
        peak = loop_cycle_ms or 0.0
        cycles = errors = consecutive = 0

        record = None
        for owner in self._owners:
            record = _peek_record(owner)
            if record is not None:
                break
        if record is not None:
            if record.last_decision_ts is not None and (
                decided is None or record.last_decision_ts > decided
            ):
                decided = record.last_decision_ts
            if record.cycles:
                loop_cycle_ms = record.loop_cycle_ms
                last_cycle_ts = record.last_cycle_ts
                peak = record.take_peak_ms() if take_peak else record.peak_cycle_ms
            cycles = record.cycles
            errors = record.errors
            consecutive = record.consecutive_errors

        return ServiceReading(
            active_positions=active,
            pending_exits=pending,
            last_decision_ts=decided,
            loop_cycle_ms=loop_cycle_ms,
            peak_cycle_ms=peak,
            last_cycle_ts=last_cycle_ts,
            cycles=cycles,
            errors=errors,
            consecutive_errors=consecutive,
        )
