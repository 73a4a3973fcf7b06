"""Exceptions raised by exit_heartbeat.

Every exception the library raises on purpose derives from `HeartbeatError`, so
a caller can catch them all at once. Each concrete class also derives from the
built-in exception a Python user would expect (`ValueError` for bad options,
`TypeError` for a wrong kind of object), so ordinary ``except`` clauses work too.
"""

from __future__ import annotations

__all__ = [
    "AlreadyAttachedError",
    "AttachError",
    "ConfigError",
    "HeartbeatError",
    "MalformedEntryError",
]


class HeartbeatError(Exception):
    """Base class of every error exit_heartbeat raises on purpose."""


class ConfigError(HeartbeatError, ValueError):
    """An option is out of range or of the wrong kind.

    The message names the option, the rule it broke and the value given.
    """


class AttachError(HeartbeatError, RuntimeError):
    """A heartbeat could not be attached to a service.

    Raised by `attach_heartbeat` before any background work starts, for example
    when no event loop is running or the service cannot be read.
    """


class AlreadyAttachedError(AttachError):
    """A heartbeat already publishes for this service to this stream."""


class MalformedEntryError(HeartbeatError, ValueError):
    """A heartbeat entry read from Redis cannot be decoded.

    Attributes:
        field: The name of the offending field.
        why: What is wrong with it, in a few words.
    """

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"field {field!r}: {why}")
        self.field = field
        self.why = why
