"""Access control and transport: passwords, ACL users and TLS, for real.

The ACL lines tested here are read from the README's access section, so the
lines users copy are the lines that were proven to work.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import port_for
import pytest
import redis.asyncio

from exit_heartbeat import Heartbeat, Status, Verdict, Watchdog, attach_heartbeat
from tests.faults.harness import STREAM, TradingService, read_entries, wait_until
from tests.server import RedisServer

pytestmark = pytest.mark.redis_server

README = Path(__file__).resolve().parents[2] / "README.md"
INTERVAL_S = 0.2
ADMIN_PASSWORD = "admin-pw-5e6d"
USER_PASSWORD = "user-pw-9f3a"
WRONG_PASSWORD = "wrong-pw-71c2"


def readme_acl_line(user: str, which: int = 0) -> list[str]:
    """The rule words of the README's ACL line number ``which`` for ``user``.

    The password in the README is replaced by the test's.
    """
    text = README.read_text(encoding="utf-8")
    section = text.split("<!-- section:access -->")[1].split("<!-- /section")[0]
    lines = re.findall(rf"^user {user} (.*)$", section, re.MULTILINE)
    assert len(lines) > which, f"the README's access section lacks {user} lines"
    rules = lines[which].split()
    return [f">{USER_PASSWORD}" if r.startswith(">") else r for r in rules]


class Attached:
    """Heartbeats a test attached, with their clients."""

    def __init__(self) -> None:
        self.started: list[tuple[Heartbeat, Any]] = []

    def attach(self, client: Any) -> Heartbeat:
        """Attach a heartbeat for a fresh service on ``client``."""
        heartbeat = attach_heartbeat(TradingService(client), interval_s=INTERVAL_S)
        self.started.append((heartbeat, client))
        return heartbeat


@pytest.fixture
async def heartbeats() -> AsyncIterator[Attached]:
    """Attach heartbeats; all stopped and their clients closed at teardown."""
    attached = Attached()
    yield attached
    for heartbeat, client in attached.started:
        await heartbeat.stop()
        await client.aclose()


@pytest.fixture
def locked_server(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    """A server whose default user needs a password."""
    return redis_server_factory(password=ADMIN_PASSWORD)


async def test_publisher_beats_with_requirepass_password(
    locked_server: RedisServer, heartbeats: Attached
) -> None:
    """A password in the URL is all the publisher needs with requirepass."""
    url = f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{locked_server.port}/0"
    heartbeat = heartbeats.attach(redis.asyncio.from_url(url))

    await wait_until(lambda: heartbeat.published >= 3, 5, "three beats")

    assert heartbeat.failed == 0


async def test_publisher_beats_as_acl_user_allowed_only_xadd(
    locked_server: RedisServer, heartbeats: Attached
) -> None:
    """The README's publisher ACL line is enough to beat and to stop cleanly."""
    async with locked_server.client() as admin:
        rules = readme_acl_line("exit_brain_pub")
        await admin.acl_setuser("exit_brain_pub", reset=True)
        await admin.execute_command("ACL", "SETUSER", "exit_brain_pub", *rules)
        await admin.acl_log_reset()
        url = f"redis://exit_brain_pub:{USER_PASSWORD}@127.0.0.1:{locked_server.port}"
        heartbeat = heartbeats.attach(redis.asyncio.from_url(url))

        await wait_until(lambda: heartbeat.published >= 3, 5, "three beats")
        await heartbeat.stop()

        assert heartbeat.failed == 0
        entries = await read_entries(admin)
        assert entries[-1][1].status is Status.STOPPED
        assert await admin.acl_log() == []

        # The user can do nothing else: no reading, no other key.
        async with redis.asyncio.from_url(url) as publisher:
            with pytest.raises(redis.exceptions.NoPermissionError):
                await publisher.xrange(STREAM)
            with pytest.raises(redis.exceptions.NoPermissionError):
                await publisher.xadd("orders", {"side": "sell"})


async def test_publisher_wrong_password_is_one_auth_error_never_the_password(
    locked_server: RedisServer,
    heartbeats: Attached,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A wrong password: one warning naming authentication, no password anywhere."""
    caplog.set_level(logging.DEBUG)
    url = f"redis://exit_brain_pub:{WRONG_PASSWORD}@127.0.0.1:{locked_server.port}/0"
    heartbeat = heartbeats.attach(redis.asyncio.from_url(url))

    await wait_until(lambda: heartbeat.failed >= 4, 5, "four failed beats")
    await heartbeat.stop()

    assert heartbeat.published == 0
    failures = [r for r in caplog.records if "publish failed" in r.getMessage()]
    assert len(failures) == 1
    assert "AuthenticationError" in failures[0].getMessage()
    captured = capsys.readouterr()
    shown = [caplog.text, captured.out, captured.err, repr(heartbeat)]
    shown += [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert not [text for text in shown if WRONG_PASSWORD in text]


ALERTS = "quantum:alerts:exit_brain"


@pytest.mark.parametrize("alerts", [False, True], ids=["reading", "alerting"])
async def test_watchdog_reads_as_acl_user_allowed_only_to_read(
    locked_server: RedisServer, heartbeats: Attached, alerts: bool
) -> None:
    """The README's watchdog ACL lines are enough to judge, scan and alert."""
    async with locked_server.client() as admin:
        url = f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{locked_server.port}/0"
        heartbeat = heartbeats.attach(redis.asyncio.from_url(url))
        await wait_until(lambda: heartbeat.published >= 1, 5, "a beat")
        await admin.acl_setuser("exit_brain_watch", reset=True)
        rules = readme_acl_line("exit_brain_watch", which=int(alerts))
        await admin.execute_command("ACL", "SETUSER", "exit_brain_watch", *rules)
        await admin.acl_log_reset()
        port = locked_server.port
        url = f"redis://exit_brain_watch:{USER_PASSWORD}@127.0.0.1:{port}"

        async with redis.asyncio.from_url(url) as reader:
            by_name = await Watchdog(reader, streams=[STREAM]).check()
            by_pattern = await Watchdog(reader, pattern="quantum:stream:*").check()
            if alerts:
                # A stream that does not exist is MISSING: one alert.
                dog = Watchdog(
                    reader,
                    streams=["quantum:stream:gone"],
                    alert_stream=ALERTS,
                    alert_after=1,
                )
                await dog.check()
                await dog.stop()

            assert [r.verdict for r in by_name] == [Verdict.OK]
            assert [r.verdict for r in by_pattern] == [Verdict.OK]
            assert await admin.xlen(ALERTS) == int(alerts)
            assert await admin.acl_log() == []
            with pytest.raises(redis.exceptions.NoPermissionError):
                await reader.xadd(STREAM, {"status": "OK"})
            with pytest.raises(redis.exceptions.NoPermissionError):
                await reader.delete(STREAM)


async def test_watchdog_wrong_password_is_unreachable_never_the_password(
    locked_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A wrong password: UNREACHABLE naming authentication, no password shown."""
    caplog.set_level(logging.DEBUG)
    url = f"redis://exit_brain_watch:{WRONG_PASSWORD}@127.0.0.1:{locked_server.port}"

    async with redis.asyncio.from_url(url) as reader:
        dog = Watchdog(reader, streams=[STREAM], alert_after=1)
        reports = [await dog.check() for _ in range(3)]

    assert {r.verdict for check in reports for r in check} == {Verdict.UNREACHABLE}
    assert "AuthenticationError" in reports[0][0].reason
    alerts = [r for r in caplog.records if "Alert: status=UNREACH" in r.getMessage()]
    assert len(alerts) == 1
    captured = capsys.readouterr()
    shown = [caplog.text, captured.out, captured.err, reports[0][0].reason]
    shown += [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert not [text for text in shown if WRONG_PASSWORD in text]


async def _run_cli(*args: str, run_for_s: float | None = None) -> tuple[int, str]:
    """Run ``exit-heartbeat`` in a process; its exit code and all it printed.

    With ``run_for_s``, interrupt it (as Ctrl-C would) after that long.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exit_heartbeat",
        *args,
        cwd=README.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    if run_for_s is not None:
        await asyncio.sleep(run_for_s)
        process.send_signal(signal.SIGINT)
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_cli_commands_run_as_the_watchdog_acl_user(
    locked_server: RedisServer, heartbeats: Attached
) -> None:
    """check, status and tail work with the README's read-only watchdog user."""
    async with locked_server.client() as admin:
        url = f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{locked_server.port}/0"
        heartbeat = heartbeats.attach(redis.asyncio.from_url(url))
        await wait_until(lambda: heartbeat.published >= 1, 5, "a beat")
        await admin.acl_setuser("exit_brain_watch", reset=True)
        rules = readme_acl_line("exit_brain_watch")
        await admin.execute_command("ACL", "SETUSER", "exit_brain_watch", *rules)
        await admin.acl_log_reset()
        port = locked_server.port
        url = f"redis://exit_brain_watch:{USER_PASSWORD}@127.0.0.1:{port}/0"

        check = await _run_cli("check", "--redis-url", url, "--stream", STREAM)
        status = await _run_cli(
            "status", "--redis-url", url, "--pattern", "quantum:stream:*"
        )
        tail = await _run_cli(
            "tail", "--redis-url", url, "--stream", STREAM, run_for_s=2.0
        )

        assert heartbeat.last_entry is not None
        instance = heartbeat.last_entry.instance
        assert check[0] == 0, check[1]
        assert f"status=OK, stream={STREAM}, instance={instance}" in check[1]
        assert status[0] == 0, status[1]
        assert [line.split()[:2] for line in status[1].splitlines()][-1] == [
            instance,
            "OK",
        ]
        beats = [line for line in tail[1].splitlines() if "status=OK" in line]
        assert len(beats) >= 3, tail[1]
        assert await admin.acl_log() == []


async def test_cli_wrong_password_exits_unreachable_never_printing_it(
    locked_server: RedisServer,
) -> None:
    """check with a wrong password: exit 3, names authentication, even with -v."""
    port = locked_server.port
    url = f"redis://exit_brain_watch:{WRONG_PASSWORD}@127.0.0.1:{port}/0"

    code, output = await _run_cli("check", "-v", "--redis-url", url)

    assert code == 3, output
    assert "Authentication" in output
    assert WRONG_PASSWORD not in output


class Certificates:
    """A test CA, a server certificate it signed, and an unrelated CA."""

    def __init__(self, directory: Path) -> None:
        self.ca = directory / "ca.crt"
        self.server_cert = directory / "server.crt"
        self.server_key = directory / "server.key"
        self.other_ca = directory / "other-ca.crt"
        self._directory = directory

    def make(self) -> Certificates:
        """Create every file with the openssl command."""
        d = self._directory
        self._openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", d / "ca.key", "-out", self.ca, "-subj", "/CN=test CA",
        )  # fmt: skip
        self._openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", d / "other-ca.key", "-out", self.other_ca,
            "-subj", "/CN=unrelated CA",
        )  # fmt: skip
        self._openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", self.server_key,
            "-out", d / "server.csr", "-subj", "/CN=127.0.0.1",
        )  # fmt: skip
        extensions = d / "server.ext"
        extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        self._openssl(
            "x509", "-req", "-in", d / "server.csr", "-CA", self.ca,
            "-CAkey", d / "ca.key", "-CAcreateserial", "-days", "2",
            "-out", self.server_cert, "-extfile", extensions,
        )  # fmt: skip
        return self

    @staticmethod
    def _openssl(*args: object) -> None:
        subprocess.run(
            ["openssl", *map(str, args)], check=True, capture_output=True, timeout=60
        )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Certificates made for this module's tests; skipped without openssl."""
    try:
        subprocess.run(["openssl", "version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the openssl command is needed to make test certificates")
    return Certificates(tmp_path_factory.mktemp("tls")).make()


@pytest.fixture
def tls_port(
    redis_server_factory: Callable[..., RedisServer], certificates: Certificates
) -> int:
    """The TLS port of a server of the test's own (its plain port stays open)."""
    port = port_for.select_random()
    try:
        redis_server_factory(
            extra_args=[
                "--tls-port", str(port),
                "--tls-cert-file", str(certificates.server_cert),
                "--tls-key-file", str(certificates.server_key),
                "--tls-ca-cert-file", str(certificates.ca),
                "--tls-auth-clients", "no",
            ]
        )  # fmt: skip
    except Exception:
        if _tls_missing():
            pytest.skip("this redis-server was built without TLS support")
        raise
    return port


def _tls_missing() -> bool:
    # A build without TLS refuses tls-port as an unknown directive; a build
    # with TLS gets past it and stops at the bad log level instead, so no
    # server ever starts here.
    probe = subprocess.run(
        ["redis-server", "--tls-port", "0", "--port", "0", "--loglevel", "bad"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return "tls-port" in probe.stdout + probe.stderr


async def test_publisher_beats_over_tls_with_the_right_ca(
    tls_port: int, certificates: Certificates, heartbeats: Attached
) -> None:
    """rediss:// with the CA that signed the server's certificate: beats, OK."""
    client = redis.asyncio.from_url(
        f"rediss://127.0.0.1:{tls_port}/0", ssl_ca_certs=str(certificates.ca)
    )
    heartbeat = heartbeats.attach(client)

    await wait_until(lambda: heartbeat.published >= 3, 5, "three beats")
    reports = await Watchdog(client, streams=[STREAM]).check()

    assert heartbeat.failed == 0
    assert len(await read_entries(client)) >= 3
    assert [r.verdict for r in reports] == [Verdict.OK]


async def test_publisher_refuses_a_certificate_that_does_not_verify(
    tls_port: int,
    certificates: Certificates,
    heartbeats: Attached,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unknown CA: nothing sent, one clear warning, the watchdog UNREACHABLE."""
    caplog.set_level(logging.INFO, logger="exit_heartbeat")
    client = redis.asyncio.from_url(
        f"rediss://127.0.0.1:{tls_port}/0", ssl_ca_certs=str(certificates.other_ca)
    )
    heartbeat = heartbeats.attach(client)

    await wait_until(lambda: heartbeat.failed >= 3, 5, "three failed beats")

    [report] = await Watchdog(client, streams=[STREAM]).check()

    assert heartbeat.published == 0
    failures = [r for r in caplog.records if "publish failed" in r.getMessage()]
    assert len(failures) == 1
    assert "certificate verify failed" in failures[0].getMessage()
    assert report.verdict is Verdict.UNREACHABLE
    assert "certificate verify failed" in report.reason
