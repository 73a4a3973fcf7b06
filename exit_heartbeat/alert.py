"""Alert sinks: an XADD to an alert stream and a command to run, per alert.

Alerts run in background tasks so a slow command or a slow Redis never holds
up the checks; each is bounded by a timeout, and each failure is logged with
what to look at. The tasks are kept until they finish, and `Alerter.aclose`
gives them the timeout to do so before cancelling what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exit_heartbeat.watchdog import Transition

__all__ = ["Alerter", "alert_fields"]

logger = logging.getLogger(__name__)

# Commands that may run at once; more alerts wait their turn, so a burst of
# transitions does not fork a process storm.
_MAX_COMMANDS = 4

# Alerts waiting or running at most; beyond, new ones are dropped (and the
# drop is logged), since an alert stuck behind a thousand others is too late.
_MAX_PENDING = 256

# Entries the alert stream keeps, trimmed approximately.
_ALERT_MAXLEN = 10_000

# On shutdown, pending alerts get their timeout and this much more, so that
# a command killed at its timeout is reaped and logged rather than cancelled.
_CLOSE_GRACE_S = 1.0

# Characters of a failed command's output quoted in the log.
_OUTPUT_TAIL = 300


def alert_fields(transition: Transition) -> dict[str, str]:
    """The details of an alert, as the XADD fields and the environment use them.

    Args:
        transition: The transition alerted on.

    Returns:
        Field name to string value; an unknown figure is ``""``.
    """
    return {
        "verdict": transition.verdict.value,
        "previous": "" if transition.previous is None else transition.previous.value,
        "reason": transition.reason,
        "stream": transition.stream,
        "instance": transition.instance,
        "age_s": "" if transition.age_s is None else f"{transition.age_s:.1f}",
        "at": f"{transition.at:.3f}",
        "trouble_s": (
            "" if transition.trouble_s is None else f"{transition.trouble_s:.1f}"
        ),
        "recovery": "1" if transition.is_recovery else "0",
        "watchdog": f"{socket.gethostname()}:{os.getpid()}",
    }


class Alerter:
    """Sends each alert to the configured sinks, in the background."""

    def __init__(
        self,
        redis: Any,
        *,
        stream: str | None = None,
        command: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        """Configure the sinks.

        Args:
            redis: The ``redis.asyncio`` client to XADD with.
            stream: The alert stream, or ``None`` for no XADD.
            command: A shell command, or ``None`` for none. It gets the alert
                in ``EXIT_HEARTBEAT_*`` environment variables.
            timeout_s: Longest XADD and longest run of the command; a command
                still running then is killed with its process group.
        """
        self._redis = redis
        self._stream = stream
        self._command = command
        self._timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._dropped = 0

    @property
    def enabled(self) -> bool:
        """Whether any sink is configured."""
        return self._stream is not None or self._command is not None

    @property
    def pending(self) -> int:
        """Alerts not finished yet."""
        return len(self._tasks)

    def send(self, transition: Transition) -> None:
        """Start sending an alert; returns at once and never raises.

        Args:
            transition: What changed.
        """
        fields = alert_fields(transition)
        # With Redis gone the XADD is bound to fail; its recovery is written.
        writable = not (transition.stream == "" and transition.verdict.is_failure)
        if self._stream is not None and writable:
            self._spawn(self._xadd(self._stream, fields))
        if self._command is not None:
            self._spawn(self._run(self._command, fields))

    async def aclose(self) -> None:
        """Wait up to the timeout for pending alerts, then cancel the rest."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(
            set(self._tasks), timeout=self._timeout_s + _CLOSE_GRACE_S
        )
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            logger.warning("alerts cancelled at shutdown count=%d", len(late))

    def _spawn(self, work: Any) -> None:
        if len(self._tasks) >= _MAX_PENDING:
            work.close()
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 100 == 0:
                logger.warning(
                    "alert dropped: too many pending pending=%d dropped=%d",
                    len(self._tasks),
                    self._dropped,
                )
            return
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("alert task failed", exc_info=task.exception())

    async def _xadd(self, stream: str, fields: dict[str, str]) -> None:
        try:
            await asyncio.wait_for(
                self._redis.xadd(
                    stream, fields, maxlen=_ALERT_MAXLEN, approximate=True
                ),
                self._timeout_s,
            )
        except Exception as exc:
            logger.warning(
                "alert not written stream=%s verdict=%s error=%s: %s",
                stream,
                fields["verdict"],
                type(exc).__name__,
                exc,
            )

    async def _run(self, command: str, fields: dict[str, str]) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(_MAX_COMMANDS)
        env = dict(os.environ)
        # The URL may carry the Redis password; the command has no need of it.
        env.pop("REDIS_URL", None)
        env.update({f"EXIT_HEARTBEAT_{name.upper()}": v for name, v in fields.items()})

        async with self._slots:
            try:
                process = await asyncio.create_subprocess_shell(
                    command,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                logger.warning(
                    "alert command not started error=%s: %s", type(exc).__name__, exc
                )
                return

            try:
                output, _ = await asyncio.wait_for(
                    process.communicate(), self._timeout_s
                )
            except asyncio.CancelledError:
                _kill_group(process.pid)
                await process.wait()
                raise
            except asyncio.TimeoutError:
                _kill_group(process.pid)
                await process.wait()
                logger.warning(
                    "alert command killed: ran longer than timeout_s=%g verdict=%s",
                    self._timeout_s,
                    fields["verdict"],
                )
                return

        if process.returncode != 0:
            tail = output.decode("utf-8", "replace").strip()[-_OUTPUT_TAIL:]
            logger.warning(
                "alert command failed exit_code=%s verdict=%s output=%r",
                process.returncode,
                fields["verdict"],
                tail,
            )
        else:
            logger.debug("alert command done verdict=%s", fields["verdict"])


def _kill_group(pid: int) -> None:
    # The shell may have started children of its own; the command runs in a
    # session of its own, so the whole group goes.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
