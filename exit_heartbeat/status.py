"""The status a heartbeat entry reports."""

from __future__ import annotations

import enum

__all__ = ["Status"]


class Status(str, enum.Enum):
    """What a service says about itself in a heartbeat entry.

    ``OK`` and ``DEGRADED`` are published while the service runs; ``STOPPED``
    is published once, by a clean stop, so that a watchdog can tell a planned
    shutdown from a crash.
    """

    OK = "OK"
    DEGRADED = "DEGRADED"
    STOPPED = "STOPPED"

    def __str__(self) -> str:
        return self.value
