"""The demo: a scripted day of ExitBrain v3.5 and its watchdog."""

from __future__ import annotations

from exit_heartbeat._embedded import EmbeddedRedis, EmbeddedRedisError
from exit_heartbeat._example import (
    ExampleOptions,
    describe_entry,
    run_example,
    safe_url,
)

__all__ = [
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "ExampleOptions",
    "describe_entry",
    "run_example",
    "safe_url",
]
