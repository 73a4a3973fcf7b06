"""`HeartbeatMixin`: the publisher for services written in the class style."""

from __future__ import annotations

from typing import Any

from exit_heartbeat.cycle import _record_for
from exit_heartbeat.errors import AttachError
from exit_heartbeat.heartbeat import Heartbeat, HeartbeatState

__all__ = ["HeartbeatMixin"]


class HeartbeatMixin:
    """Give a service ``init_heartbeat``, ``start_heartbeat`` and friends.

    The service reports its own cycles with `set_cycle_time` and keeps
    ``last_decision_ts`` itself; the heartbeat reads both and publishes the
    same entries as `attach_heartbeat`, on the same publisher::

        class ExitBrainService(HeartbeatMixin):
            def __init__(self, redis_client):
                HeartbeatMixin.__init__(self)
                self.active_positions = {}
                self.last_decision_ts = 0.0
                self.init_heartbeat(redis_client, interval=1.0)

            async def run(self):
                self.start_heartbeat()
                ...  # each cycle: self.set_cycle_time(cycle_ms)
                await self.stop_heartbeat()
    """

    def __init__(self) -> None:
        """Prepare the mixin's state; call it from the service's ``__init__``."""
        self._heartbeat_redis: Any = None
        self._heartbeat_options: dict[str, Any] | None = None
        self._heartbeat: Heartbeat | None = None

    @property
    def heartbeat(self) -> Heartbeat | None:
        """The current heartbeat: created by `init_heartbeat`, then running."""
        return getattr(self, "_heartbeat", None)

    def init_heartbeat(
        self, redis_client: Any, interval: float = 1.0, **options: Any
    ) -> None:
        """Configure the heartbeat; it starts with `start_heartbeat`.

        Every option is checked here, so it may be called from ``__init__``,
        outside any event loop, and a mistake shows up at once.

        Args:
            redis_client: A ``redis.asyncio`` client.
            interval: Seconds between beats (``interval_s`` of
                `attach_heartbeat`).
            **options: Any other keyword option of `attach_heartbeat`.

        Raises:
            ConfigError: An option is out of range.
            AttachError: The service or client cannot be used.
        """
        self._heartbeat_redis = redis_client
        self._heartbeat_options = {"interval_s": interval, **options}
        self._heartbeat = self._new_heartbeat()

    def _new_heartbeat(self) -> Heartbeat:
        assert self._heartbeat_options is not None
        # A mixin service reports its cycles through set_cycle_time(), so the
        # stall rule applies from the start, before the first report.
        return Heartbeat(
            self,
            self._heartbeat_redis,
            tracks_cycles=True,
            **self._heartbeat_options,
        )

    def start_heartbeat(self) -> Heartbeat:
        """Start publishing; call it from the running service.

        Returns:
            The running heartbeat, also kept as `heartbeat`.

        Raises:
            AttachError: `init_heartbeat` was not called, no event loop is
                running, or the heartbeat is running already.
        """
        heartbeat = getattr(self, "_heartbeat", None)
        if heartbeat is None:
            raise AttachError(
                f"{type(self).__name__}.start_heartbeat() was called before "
                f"init_heartbeat(redis_client); call init_heartbeat first, "
                f"usually in __init__."
            )
        if heartbeat.state is HeartbeatState.STOPPED:
            # A service may be run again after a stop; it gets a new heartbeat.
            heartbeat = self._heartbeat = self._new_heartbeat()
        heartbeat.start()
        return heartbeat

    async def stop_heartbeat(self) -> None:
        """Stop publishing, with a final ``STOPPED`` entry; safe to repeat."""
        heartbeat = getattr(self, "_heartbeat", None)
        if heartbeat is not None:
            await heartbeat.stop()

    def set_cycle_time(self, cycle_ms: float) -> None:
        """Report that a cycle finished and how long it took.

        Args:
            cycle_ms: The cycle's duration in milliseconds; a negative value
                (from a clock that stepped back) is taken as zero.
        """
        _record_for(self).report(float(cycle_ms))
