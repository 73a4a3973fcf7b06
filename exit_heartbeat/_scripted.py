"""The demo's script: its service, its steps, and what the watchdog should say.

The service is the patched stand-in of ``examples/exitbrain_v3_5``: the same
two decorators on its cycle and the same ``attach_heartbeat`` call, with the
thresholds scaled to the demo's pace. What it adds is the `Fault` switch that
each `Phase` of the `day` turns to make the service slow, idle, hung or
blocked. `matches` tells whether what the watchdog reported is what a step
expects.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import random
import time
from typing import Any

from exit_heartbeat.cycle import decision, timed_cycle
from exit_heartbeat.heartbeat import Heartbeat, attach_heartbeat
from exit_heartbeat.verdict import Verdict

__all__ = [
    "DEMO_STREAM",
    "Fault",
    "Pace",
    "Phase",
    "ScriptedExitBrain",
    "Sighting",
    "day",
    "matches",
    "reason_keys",
]

#: The demo's own stream: it matches the default watch pattern, and a demo run
#: against a real server never writes to a real service's stream.
DEMO_STREAM = "quantum:stream:exit_brain_demo.heartbeat"

SIMULATED_POSITIONS = {"BTCUSDT": 97_000.0, "ETHUSDT": 3_400.0, "SOLUSDT": 190.0}


class Fault(enum.Enum):
    """What the script makes the service do wrong."""

    NONE = "none"
    SLOW = "slow"
    IDLE = "idle"
    HANG = "hang"
    BLOCK = "block"


@dataclasses.dataclass(frozen=True)
class Pace:
    """Every duration of the demo, from one speed factor.

    At speed 1 the day takes about 20 s; at speed 4, about 5 s. Thresholds
    scale with the durations so that each fault trips the same rule.

    Attributes:
        speed: How much faster than the default the day runs.
    """

    speed: float = 1.0

    def s(self, seconds: float) -> float:
        """Scale a duration.

        Args:
            seconds: The duration at speed 1.

        Returns:
            The duration at this pace.
        """
        return seconds / self.speed

    @property
    def interval_s(self) -> float:
        """Seconds between two heartbeats."""
        return self.s(0.5)

    @property
    def cycle_pause_s(self) -> float:
        """Pause between two cycles of the service."""
        return self.s(0.25)

    @property
    def max_cycle_ms(self) -> float:
        """The cycle rule's limit."""
        return self.s(0.5) * 1000.0

    @property
    def slow_cycle_s(self) -> float:
        """How long a slow cycle takes: over the cycle rule's limit."""
        return self.s(0.8)

    @property
    def decision_timeout_s(self) -> float:
        """The decision rule's limit: shorter than the stall rule's."""
        return self.s(1.5)

    @property
    def stall_after_s(self) -> float:
        """The stall rule's limit: longer than the idle phase."""
        return self.s(4.0)

    @property
    def block_s(self) -> float:
        """How long the event loop is blocked: well past the stale limit."""
        return self.s(3.0)

    @property
    def watch_interval_s(self) -> float:
        """Seconds between two checks of the watchdog."""
        return self.s(0.25)

    @property
    def stale_after_s(self) -> float:
        """The watchdog's stale limit: three heartbeat intervals."""
        return self.s(1.5)


class ScriptedExitBrain:
    """ExitBrain v3.5 after the heartbeat patch, with a fault switch."""

    def __init__(self, redis: Any, pace: Pace) -> None:
        """Create the service; nothing runs before `start`.

        Args:
            redis: The service's ``redis.asyncio`` client.
            pace: The demo's durations and thresholds.
        """
        self.redis = redis
        self.plans_generated = 0
        self.fault = Fault.NONE
        self._pace = pace
        self._release = asyncio.Event()
        self._cycled = asyncio.Event()
        self._started = 0
        self._finished = 0
        self._task: asyncio.Task[None] | None = None
        self.heartbeat: Heartbeat | None = None

    @timed_cycle
    @decision
    async def process_cycle(self) -> None:
        """Plan an exit for each open position, unless a fault gets in the way."""
        self._started += 1
        number = self._started
        if self.fault is Fault.SLOW:
            await asyncio.sleep(self._pace.slow_cycle_s)
        elif self.fault is Fault.HANG:
            # A reply that never comes: the cycle waits, the loop runs on.
            self._release.clear()
            await self._release.wait()
        elif self.fault is Fault.BLOCK:
            self.fault = Fault.NONE
            # The mistake the demo shows: a blocking call in async code
            # freezes the whole event loop, the heartbeat task included.
            time.sleep(self._pace.block_s)  # noqa: ASYNC251

        for _symbol in SIMULATED_POSITIONS:
            await asyncio.sleep(random.uniform(0.002, 0.008))
            self.plans_generated += 1
        self._finished = number
        self._cycled.set()

    def release(self) -> None:
        """Let a hung cycle finish."""
        self._release.set()

    async def next_cycle(self) -> None:
        """Wait until a cycle that starts from now on has finished."""
        target = self._started + 1
        while self._finished < target:
            self._cycled.clear()
            await self._cycled.wait()

    async def _run(self) -> None:
        while True:
            # While idle the service holds its positions and decides nothing,
            # as when the exchange halts trading.
            if self.fault is not Fault.IDLE:
                await self.process_cycle()
            await asyncio.sleep(self._pace.cycle_pause_s)

    async def start(self) -> None:
        """Start the cycles and the heartbeat."""
        self._task = asyncio.create_task(self._run())
        pace = self._pace
        self.heartbeat = attach_heartbeat(
            self,
            stream=DEMO_STREAM,
            positions=lambda s: s.plans_generated,
            interval_s=pace.interval_s,
            max_cycle_ms=pace.max_cycle_ms,
            decision_timeout_s=pace.decision_timeout_s,
            stall_after_s=pace.stall_after_s,
        )

    async def stop(self) -> None:
        """Stop the cycles, then the heartbeat, which publishes STOPPED."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.heartbeat is not None:
            await self.heartbeat.stop()


@dataclasses.dataclass(frozen=True)
class Phase:
    """One step of the scripted day and the verdict it should bring.

    Attributes:
        title: What happens, in words; the part before the colon names it.
        fault: The fault to switch on; ``None`` stops the service.
        duration_s: How long the step lasts.
        verdict: What the watchdog should say during the step.
        rule: For ``DEGRADED``, the health rule that should fire.
        settle: Let one healthy cycle finish before the fault, so that the
            figures of the previous fault do not linger in the reason.
    """

    title: str
    fault: Fault | None
    duration_s: float
    verdict: Verdict
    rule: str | None = None
    settle: bool = False

    async def begin(self, brain: ScriptedExitBrain) -> None:
        """Turn the service's fault switch for this step, or stop it."""
        if self.fault is None:
            await brain.stop()
            return
        brain.release()
        if self.settle:
            brain.fault = Fault.NONE
            await brain.next_cycle()
        brain.fault = self.fault

    @property
    def expected(self) -> str:
        """The expected verdict in words, such as ``DEGRADED (cycle rule)``."""
        return f"{self.verdict} ({self.rule} rule)" if self.rule else str(self.verdict)


def day(pace: Pace) -> list[Phase]:
    """The script of the day.

    Args:
        pace: The durations and thresholds to tell the steps in.

    Returns:
        The steps, in order.
    """
    limit_ms = pace.max_cycle_ms
    return [
        Phase(
            f"healthy: a cycle every {pace.cycle_pause_s:.2g}s, a decision each cycle",
            Fault.NONE,
            pace.s(3.0),
            Verdict.OK,
        ),
        Phase(
            f"a slow cycle: each takes {pace.slow_cycle_s * 1000:.0f} ms, "
            f"the limit is {limit_ms:.0f} ms",
            Fault.SLOW,
            pace.s(3.0),
            Verdict.DEGRADED,
            "cycle",
        ),
        Phase(
            f"no decisions: trading halts, positions stay open, the limit is "
            f"{pace.decision_timeout_s:.2g}s",
            Fault.IDLE,
            pace.s(3.5),
            Verdict.DEGRADED,
            "decision",
            settle=True,
        ),
        Phase(
            f"a hung cycle: it awaits a reply that never comes, the loop runs "
            f"on; the limit is {pace.stall_after_s:.2g}s",
            Fault.HANG,
            pace.s(3.0),
            Verdict.DEGRADED,
            "stall",
        ),
        Phase(
            f"the event loop blocked: a cycle calls time.sleep({pace.block_s:.2g}), "
            f"no heartbeat can leave",
            Fault.BLOCK,
            pace.s(3.5),
            Verdict.STALE,
        ),
        Phase("recovery: healthy cycles again", Fault.NONE, pace.s(3.0), Verdict.OK),
        Phase("a clean stop", None, pace.s(1.5), Verdict.STOPPED),
    ]


# The key of each rule's figure in a published reason, as health.py writes it.
_RULE_KEYS = {
    "cycle": "cycle_ms",
    "decision": "no_decision_s",
    "stall": "no_cycle_s",
}


def reason_keys(reason: str) -> frozenset[str]:
    """The figures named in a published reason.

    Args:
        reason: A reason such as ``cycle_ms=612>500; no_cycle_s=11.0>10``.

    Returns:
        The names of its figures, such as ``cycle_ms`` and ``no_cycle_s``.
    """
    return frozenset(
        part.split("=", 1)[0].strip() for part in reason.split(";") if "=" in part
    )


@dataclasses.dataclass(frozen=True)
class Sighting:
    """One report of the watchdog, kept for the summary.

    Attributes:
        at_s: Seconds into the day when it was made.
        verdict: The verdict.
        reason: The reason, empty for OK.
        age_s: Age of the newest heartbeat, ``None`` without one.
    """

    at_s: float
    verdict: Verdict
    reason: str
    age_s: float | None


def matches(phase: Phase, sighting: Sighting) -> bool:
    """Tell whether a sighting is what a step expects.

    Args:
        phase: The step.
        sighting: A report of the watchdog.

    Returns:
        Whether its verdict is the step's and, for a step that expects a
        rule to fire, whether the reason names that rule's figure.
    """
    if sighting.verdict is not phase.verdict:
        return False
    return phase.rule is None or _RULE_KEYS[phase.rule] in reason_keys(sighting.reason)
