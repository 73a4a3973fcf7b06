"""The life of a long-lived object: created, running, stopped."""

from __future__ import annotations

import enum

__all__ = ["Lifecycle"]


class Lifecycle(str, enum.Enum):
    """Where a `Heartbeat` or a `Watchdog` is in its life.

    It goes from ``created`` to ``running`` once, and to ``stopped`` once; a
    stopped object does not start again.
    """

    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value
