"""Telling systemd how the watchdog is doing, over the ``NOTIFY_SOCKET``.

systemd's notification protocol is one datagram of ``KEY=value`` lines sent to
the AF_UNIX socket named in ``NOTIFY_SOCKET``; a name starting with ``@`` is in
the abstract namespace. With ``Type=notify`` the unit counts as started on
``READY=1``, and with ``WatchdogSec=`` systemd restarts it unless ``WATCHDOG=1``
arrives often enough, which is how a watchdog that hangs gets restarted.

Sending never raises and never blocks: a notification that cannot be sent is
logged once and the watchdog carries on.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["SystemdNotifier"]

logger = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends notifications to systemd; does nothing when not run by systemd.

    Build it with `from_environ` in the process systemd started.
    """

    def __init__(
        self, socket_path: str | None, watchdog_interval_s: float | None = None
    ) -> None:
        """Bind the notifier to a socket.

        Args:
            socket_path: The value of ``NOTIFY_SOCKET``; ``None`` or empty to
                send nothing.
            watchdog_interval_s: systemd's watchdog timeout, when it expects
                ``WATCHDOG=1`` pings; ``None`` when it does not.
        """
        self._address: str | bytes | None = None
        if socket_path:
            # A leading "@" names a socket in the abstract namespace, which
            # the kernel spells with a leading NUL byte.
            self._address = (
                b"\0" + socket_path[1:].encode()
                if socket_path.startswith("@")
                else socket_path
            )
        self._watchdog_interval_s = watchdog_interval_s
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``.

        Args:
            environ: The environment; ``os.environ`` by default.

        Returns:
            A notifier, enabled only when systemd asked for notifications.
        """
        env = os.environ if environ is None else environ
        interval_s: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process systemd expects pings from; a child
        # that inherited the variables must not ping on its parent's behalf.
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            interval_s = int(usec) / 1e6
        return cls(env.get("NOTIFY_SOCKET") or None, interval_s)

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to send to."""
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """systemd's watchdog timeout, or ``None`` when it expects no pings."""
        return self._watchdog_interval_s if self.enabled else None

    def notify(self, *lines: str) -> bool:
        """Send one datagram made of ``lines``.

        Args:
            lines: ``KEY=value`` lines, such as ``"READY=1"``.

        Returns:
            Whether it was sent; ``False`` when disabled or on failure.
        """
        if self._address is None:
            return False
        message = "\n".join(lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                logger.warning(
                    "systemd notification not sent error=%s: %s",
                    type(exc).__name__,
                    exc,
                )
            return False
        if self._failing:
            self._failing = False
            logger.info("systemd notifications sent again")
        return True

    def ready(self, status: str | None = None) -> bool:
        """Say the service is up (``READY=1``), with a status line if given."""
        lines = ["READY=1"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify(*lines)

    def watchdog(self) -> bool:
        """Ping systemd's watchdog (``WATCHDOG=1``), if it expects pings."""
        if self.watchdog_interval_s is None:
            return False
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """Set the line ``systemctl status`` shows (``STATUS=``)."""
        return self.notify(f"STATUS={_one_line(text)}")

    def stopping(self) -> bool:
        """Say the service is shutting down (``STOPPING=1``)."""
        return self.notify("STOPPING=1")

    def close(self) -> None:
        """Close the socket; a later notification opens it again."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())
