"""Redis key names and patterns used by exit_heartbeat, gathered in one place."""

from __future__ import annotations

__all__ = ["DEFAULT_PATTERN", "DEFAULT_STREAM"]

#: The stream the Exit Brain publishes its heartbeat to.
DEFAULT_STREAM = "quantum:stream:exit_brain.heartbeat"

#: A SCAN pattern that matches every service's heartbeat stream.
DEFAULT_PATTERN = "quantum:stream:*.heartbeat"
