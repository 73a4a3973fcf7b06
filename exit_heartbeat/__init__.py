"""exit_heartbeat: prove, every second, that an asyncio service is alive and deciding.

Decorate the service's cycle method with `timed_cycle` and `decision`, call
`attach_heartbeat` in its start-up, and a background task publishes a heartbeat
entry to a Redis stream every interval. The ``exit-heartbeat`` command reads
those entries and raises the alarm when a service hangs, slows or stops
deciding.
"""

from __future__ import annotations

from exit_heartbeat.clock import Clock, LoopClock
from exit_heartbeat.cycle import CycleStats, cycle_stats, decision, timed_cycle
from exit_heartbeat.entry import (
    SCHEMA_VERSION,
    HeartbeatEntry,
    decode_entry,
    encode_entry,
)
from exit_heartbeat.errors import (
    AlreadyAttachedError,
    AttachError,
    ConfigError,
    HeartbeatError,
    MalformedEntryError,
)
from exit_heartbeat.health import Health, HealthPolicy, HealthSnapshot, evaluate
from exit_heartbeat.heartbeat import Heartbeat, HeartbeatState, attach_heartbeat
from exit_heartbeat.keys import DEFAULT_PATTERN, DEFAULT_STREAM
from exit_heartbeat.mixin import HeartbeatMixin
from exit_heartbeat.status import Status
from exit_heartbeat.verdict import InstanceReport, Verdict
from exit_heartbeat.watchdog import Transition, Watchdog, WatchdogState, check_streams

__all__ = [
    "DEFAULT_PATTERN",
    "DEFAULT_STREAM",
    "SCHEMA_VERSION",
    "AlreadyAttachedError",
    "AttachError",
    "Clock",
    "ConfigError",
    "CycleStats",
    "Health",
    "HealthPolicy",
    "HealthSnapshot",
    "Heartbeat",
    "HeartbeatEntry",
    "HeartbeatError",
    "HeartbeatMixin",
    "HeartbeatState",
    "InstanceReport",
    "LoopClock",
    "MalformedEntryError",
    "Status",
    "Transition",
    "Verdict",
    "Watchdog",
    "WatchdogState",
    "attach_heartbeat",
    "check_streams",
    "cycle_stats",
    "decision",
    "decode_entry",
    "encode_entry",
    "evaluate",
    "timed_cycle",
]

__version__ = "0.1.0"
