"""The stream writer: XADD one entry at a time, each within a timeout.

The publisher's promises about Redis live here: at most one command is in
flight, a command that outlives its timeout is cancelled (redis-py then drops
its connection, so the late reply is never read as the answer to a later
command), and a reply that is not an entry ID counts as a failure.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from exit_heartbeat.clock import Clock
from exit_heartbeat.errors import AttachError

__all__ = ["StreamWriter", "check_client", "error_kind"]


class _WriteError(Exception):
    """A write that failed for a reason of the writer's own.

    Its ``kind`` is what logs show as the error: the class names are private
    and mean nothing to an operator.
    """

    kind = "WriteError"


class _TimeoutError(_WriteError):
    kind = "Timeout"

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"no reply within {timeout_s:g}s")


class _BusyError(_WriteError):
    kind = "StillInFlight"

    def __init__(self) -> None:
        super().__init__("the previous publish has not finished")


class _CancelledError(_WriteError):
    kind = "Cancelled"

    def __init__(self) -> None:
        super().__init__("the command was cancelled before Redis answered")


def error_kind(exc: Exception) -> str:
    """The name to log for a failed write: the error's type, in plain words."""
    return exc.kind if isinstance(exc, _WriteError) else type(exc).__name__


def check_client(redis: Any, service: object) -> None:
    """Refuse a missing or blocking client before any background work.

    Raises:
        AttachError: ``redis`` is ``None`` or not an asyncio client.
    """
    if redis is None:
        raise AttachError(
            f"no Redis client for {type(service).__name__}: it has no 'redis' "
            f"attribute. Pass redis=<a redis.asyncio client>."
        )
    execute = getattr(redis, "execute_command", None)
    if not hasattr(redis, "xadd") or not inspect.iscoroutinefunction(execute):
        raise AttachError(
            f"redis must be an asyncio client such as redis.asyncio.Redis, got "
            f"{type(redis).__module__}.{type(redis).__qualname__}. A blocking "
            f"client would stall the event loop; create one with "
            f"redis.asyncio.from_url(...)."
        )


def _is_stream_id(reply: Any) -> bool:
    # XADD answers with the new entry's ID; anything else is not its answer.
    if isinstance(reply, bytes):
        reply = reply.decode("ascii", "replace")
    if not isinstance(reply, str):
        return False
    millis, _, sequence = reply.partition("-")
    return millis.isdigit() and sequence.isdigit()


def _landed(write: asyncio.Future[Any]) -> bool:
    return (
        write.done()
        and not write.cancelled()
        and write.exception() is None
        and _is_stream_id(write.result())
    )


def _consume_result(future: asyncio.Future[Any]) -> None:
    # Retrieve the outcome of a write that nobody awaits any more (one that
    # timed out), so asyncio does not warn that its exception went unseen.
    if not future.cancelled():
        future.exception()


class StreamWriter:
    """Writes entries to one stream, one command at a time.

    Args:
        redis: A ``redis.asyncio`` client.
        stream: The stream key.
        maxlen: Entries to keep; trimmed approximately unless ``approximate``
            is false.
        approximate: Trim with ``MAXLEN ~`` (cheap) rather than exactly.
        timeout_s: Longest wait for one write.
    """

    def __init__(
        self,
        redis: Any,
        stream: str,
        maxlen: int,
        approximate: bool,
        timeout_s: float,
    ) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._approximate = approximate
        self._timeout_s = timeout_s
        self._in_flight: asyncio.Future[Any] | None = None
        # A write whose caller was cancelled before it could learn the
        # outcome; `take_interrupted` reports it once the outcome is known.
        self._interrupted: asyncio.Future[Any] | None = None

    async def write(self, fields: dict[str, str], clock: Clock) -> None:
        """XADD ``fields``, waiting at most the timeout on ``clock``.

        Raises:
            Exception: Whatever the client raised, or a writer error (timeout,
                previous write still in flight, cancelled, wrong reply); its
                `error_kind` names it.
        """
        if self._in_flight is not None and not self._in_flight.done():
            raise _BusyError()

        write = asyncio.ensure_future(
            self._redis.xadd(
                self._stream,
                fields,
                maxlen=self._maxlen,
                approximate=self._approximate,
            )
        )
        self._in_flight = self._interrupted = write
        write.add_done_callback(_consume_result)
        timer = asyncio.ensure_future(clock.sleep(self._timeout_s))
        try:
            await asyncio.wait({write, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        self._interrupted = None

        if not write.done():
            write.cancel()
            raise _TimeoutError(self._timeout_s)
        if write.cancelled():
            # Cancelled from elsewhere (the client being closed, say): one
            # failed write, not a reason for the caller to end.
            raise _CancelledError()
        reply = write.result()
        if not _is_stream_id(reply):
            raise ValueError(f"XADD answered {reply!r:.60}, not an entry ID")

    async def drain(self, clock: Clock) -> None:
        """Wait, at most the timeout, for a write still unwinding to end.

        A write cancelled by its timeout may still be closing its connection;
        waiting keeps a following write from being a second one in flight.
        """
        in_flight = self._in_flight
        if in_flight is None or in_flight.done():
            return
        timer = asyncio.ensure_future(clock.sleep(self._timeout_s))
        await asyncio.wait({in_flight, timer}, return_when=asyncio.FIRST_COMPLETED)
        timer.cancel()

    def take_interrupted(self) -> bool | None:
        """Whether a write whose caller was cancelled reached the stream.

        Returns:
            ``None`` when no write was interrupted, else ``True`` if it landed
            and ``False`` if it failed or has not finished; each interrupted
            write is reported once.
        """
        write, self._interrupted = self._interrupted, None
        return None if write is None else _landed(write)
