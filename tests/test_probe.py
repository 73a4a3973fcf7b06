"""Tests of `ServiceProbe`: reading a service however it keeps its figures."""

from __future__ import annotations

import math
from typing import Any

import pytest

from exit_heartbeat import AttachError, decision, timed_cycle
from exit_heartbeat.probe import ServiceProbe


class Bare:
    """A service that keeps nothing but its positions."""

    def __init__(self, positions: Any = None) -> None:
        self.active_positions = {} if positions is None else positions


class Decorated(Bare):
    """A service whose cycle is decorated."""

    @timed_cycle
    @decision
    def process_cycle(self) -> None:
        pass


def test_probe_counts_positions_of_a_sized_attribute() -> None:
    """active_positions holding a collection is counted by its length."""
    probe = ServiceProbe(Bare({"BTC": 1, "ETH": 2, "SOL": 3}))

    assert probe.read().active_positions == 3


def test_probe_takes_a_whole_float_as_a_count() -> None:
    """A float with no fraction, as some services keep counts, is accepted."""
    assert ServiceProbe(Bare(4.0)).read().active_positions == 4


@pytest.mark.parametrize("value", [2.5, math.nan, -1, True, "3", None])
def test_probe_refuses_a_position_count_that_is_not_whole(value: object) -> None:
    """A position figure that is not a whole count fails at construction."""
    with pytest.raises(AttachError, match=r"cannot read the service Bare.*positions="):
        ServiceProbe(Bare(value) if value is not None else _none_positions())


def _none_positions() -> Bare:
    service = Bare()
    service.active_positions = None  # type: ignore[assignment]
    return service


def test_probe_pending_exits_default_to_zero() -> None:
    """A service without pending_exits reports 0."""
    assert ServiceProbe(Bare()).read().pending_exits == 0


def test_probe_pending_exits_by_name_or_function() -> None:
    """pending_exits may name an attribute or be a function of the service."""
    service = Bare()
    service.exits_queue = [1, 2]  # type: ignore[attr-defined]

    by_name = ServiceProbe(service, pending_exits="exits_queue")
    by_function = ServiceProbe(service, pending_exits=lambda s: 5)

    assert by_name.read().pending_exits == 2
    assert by_function.read().pending_exits == 5


def test_probe_refuses_a_counter_of_the_wrong_kind() -> None:
    """A counter that is neither a name nor a function is refused."""
    with pytest.raises(AttachError, match="attribute name or a function"):
        ServiceProbe(Bare(), positions=3)  # type: ignore[arg-type]


def test_probe_reads_attributes_an_undecorated_service_keeps() -> None:
    """last_decision_ts, _last_cycle_ms and last_cycle_ts are read as they are."""
    service = Bare()
    service.last_decision_ts = 1_800_000_000.0  # type: ignore[attr-defined]
    service._last_cycle_ms = 42  # type: ignore[attr-defined]
    service.last_cycle_ts = 1_800_000_001.0  # type: ignore[attr-defined]

    probe = ServiceProbe(service)
    reading = probe.read()

    assert probe.tracks_cycles
    assert reading.last_decision_ts == 1_800_000_000.0
    assert reading.loop_cycle_ms == 42.0
    assert reading.last_cycle_ts == 1_800_000_001.0


@pytest.mark.parametrize("value", [0.0, -5.0, math.inf, "yesterday", True])
def test_probe_ignores_a_decision_time_that_is_not_a_time(value: object) -> None:
    """An unset (0) or nonsensical last_decision_ts reads as "never"."""
    service = Bare()
    service.last_decision_ts = value  # type: ignore[attr-defined]

    assert ServiceProbe(service).read().last_decision_ts is None


def test_probe_without_cycle_times_does_not_track_cycles() -> None:
    """A service that says nothing about its cycles cannot be judged stalled."""
    service = Bare()
    service._last_cycle_ms = 10  # type: ignore[attr-defined]

    assert not ServiceProbe(service).tracks_cycles


def test_probe_prefers_the_decorator_records() -> None:
    """A decorated service is read from its records: counts and times."""
    service = Decorated()
    probe = ServiceProbe(service)
    service.process_cycle()
    service.process_cycle()

    reading = probe.read()

    assert probe.tracks_cycles
    assert reading.cycles == 2
    assert reading.last_decision_ts is not None
    assert reading.last_cycle_ts == reading.last_decision_ts


def test_probe_takes_the_peak_once() -> None:
    """The slowest cycle is reported once, then starts anew."""
    service = Decorated()
    probe = ServiceProbe(service)
    service.process_cycle()

    first = probe.read(take_peak=False)
    second = probe.read()
    third = probe.read()

    assert second.peak_cycle_ms == first.peak_cycle_ms
    assert third.peak_cycle_ms == 0.0


def test_probe_passes_a_counter_error_to_the_caller() -> None:
    """After construction, a counter that raises makes read() raise."""
    broken = [False]

    def count(service: object) -> int:
        if broken[0]:
            raise KeyError("positions")
        return 0

    probe = ServiceProbe(Bare(), positions=count)
    broken[0] = True

    with pytest.raises(KeyError):
        probe.read()


def test_probe_refuses_an_async_counter() -> None:
    """An async counter is refused at once with what to do instead."""

    async def count(service: object) -> int:
        return 1

    with pytest.raises(AttachError, match=r"not an async one.*pass its name"):
        ServiceProbe(Bare(), positions=count)


def test_probe_tracks_cycles_when_last_cycle_ts_starts_as_none() -> None:
    """A last_cycle_ts attribute still None at attach time enables the stall rule."""
    service = Bare()
    service.last_cycle_ts = None  # type: ignore[attr-defined]

    assert ServiceProbe(service).tracks_cycles
