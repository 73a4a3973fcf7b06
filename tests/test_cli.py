"""Tests of the ``exit-heartbeat`` command line.

Parsing and error handling need no server. Commands that read streams run
against the session's own redis-server, each test on keys of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from exit_heartbeat import HeartbeatEntry, Status, encode_entry
from exit_heartbeat.cli import main
from tests.server import RedisServer

# A port nothing listens on: connections are refused at once.
CLOSED_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def stream() -> str:
    """A stream key of this test's own."""
    return f"test:{uuid.uuid4().hex}.heartbeat"


@pytest.fixture
def sync_client(shared_redis_server: RedisServer) -> Any:
    """A blocking client of the shared server, for setting keys up."""
    client = redis.Redis(host=shared_redis_server.host, port=shared_redis_server.port)
    yield client
    client.close()


def beat(
    client: Any, stream: str, status: Status = Status.OK, instance: str = "h:1"
) -> None:
    """XADD one fresh entry, as a healthy publisher would."""
    entry = HeartbeatEntry(
        timestamp=time.time(),
        status=status,
        instance=instance,
        loop_cycle_ms=12.5,
        active_positions_count=3,
        last_decision_ts=time.time() - 1.0,
    )
    client.xadd(stream, encode_entry(entry))


def run_cli(*args: str) -> int:
    """main() with the given arguments, as the console script runs it."""
    return main(list(args))


# -- parsing and bad input ---------------------------------------------------


@pytest.mark.parametrize("command", ["watch", "check", "status", "tail"])
def test_cli_help_shows_an_example_for_each_command(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--help of every command exits 0 and shows an example invocation."""
    code = run_cli(command, "--help")

    out = capsys.readouterr().out
    assert code == 0
    assert "example:" in out
    assert f"exit-heartbeat {command}" in out
    assert "--redis-url" in out


def test_cli_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """The top-level --help names every command and the exit codes."""
    assert run_cli("--help") == 0

    out = capsys.readouterr().out
    for command in ("watch", "check", "status", "tail", "demo"):
        assert command in out
    assert "2 STALE/STOPPED/MISSING" in out


def test_cli_unknown_option_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unknown option exits 3 with argparse's sentence, no traceback."""
    code = run_cli("check", "--bogus")

    err = capsys.readouterr().err
    assert code == 3
    assert "unrecognized arguments: --bogus" in err
    assert "Traceback" not in err


def test_cli_bad_number_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    """A non-numeric --stale-after is refused with the option named."""
    code = run_cli("check", "--stale-after", "soon")

    err = capsys.readouterr().err
    assert code == 3
    assert "--stale-after" in err
    assert "'soon' is not a number" in err


def test_cli_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """With no command the help goes to stderr and the exit is non-zero."""
    assert run_cli() == 3
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:6379", "must start with redis://"),
        ("redis://:hunter2-secret@localhost:port/0", "Port could not be cast"),
        ("redis://[::1", "bad Redis URL"),
    ],
)
def test_cli_bad_url_is_a_clear_error_without_password(
    url: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed --redis-url exits 3 with a sentence that hides the password."""
    code = run_cli("check", "--redis-url", url)

    captured = capsys.readouterr()
    assert code == 3
    assert expected in captured.err
    assert "hunter2" not in captured.err + captured.out
    assert "Traceback" not in captured.err


def test_cli_password_never_printed_when_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unreachable server with a password in the URL: the password stays hidden."""
    code = run_cli(
        "check", "-v", "--json", "--redis-url", "redis://:s3cr3t-pw@127.0.0.1:1/0"
    )

    captured = capsys.readouterr()
    assert code == 3
    assert "UNREACHABLE" in captured.out
    assert "s3cr3t-pw" not in captured.out + captured.err


def test_cli_help_does_not_show_redis_url_from_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--help mentions $REDIS_URL but never prints its value."""
    monkeypatch.setenv("REDIS_URL", "redis://:env-secret@localhost:6379/0")

    run_cli("watch", "--help")

    assert "env-secret" not in capsys.readouterr().out


def test_cli_redis_url_taken_from_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --redis-url the REDIS_URL variable is used."""
    monkeypatch.setenv("REDIS_URL", CLOSED_URL)

    code = run_cli("check", "--json")

    assert code == 3
    assert json.loads(capsys.readouterr().out)["verdict"] == "UNREACHABLE"


def test_cli_demo_is_handed_its_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """'demo --help' reaches the demo's own parser and exits 0."""
    assert run_cli("demo", "--help") == 0
    assert "usage" in capsys.readouterr().out.lower()


# -- check, status and tail on a real server ---------------------------------


@pytest.mark.redis_server
def test_cli_check_healthy_stream_exits_0_with_status_line(
    shared_redis_server: RedisServer,
    sync_client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """check on a fresh OK entry exits 0 and prints its Status line."""
    beat(sync_client, stream)

    code = run_cli("check", "--redis-url", shared_redis_server.url, "--stream", stream)

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("Status: heartbeat=")
    assert f"status=OK, stream={stream}, instance=h:1" in out


@pytest.mark.redis_server
def test_cli_check_json_for_scripts(
    shared_redis_server: RedisServer,
    sync_client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """check --json prints the worst verdict, the exit code and each report."""
    beat(sync_client, stream, Status.DEGRADED)

    code = run_cli(
        "check", "--json", "--redis-url", shared_redis_server.url, "--stream", stream
    )

    document = json.loads(capsys.readouterr().out)
    assert code == 1
    assert document["verdict"] == "DEGRADED"
    assert document["exit_code"] == 1
    assert document["reports"][0]["entry"]["active_positions_count"] == "3"


@pytest.mark.redis_server
def test_cli_check_wrongtype_key_is_a_clear_malformed(
    shared_redis_server: RedisServer,
    sync_client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A key that is not a stream exits 3 with a sentence, not a traceback."""
    sync_client.set(stream, "not a stream")

    code = run_cli("check", "--redis-url", shared_redis_server.url, "--stream", stream)

    captured = capsys.readouterr()
    assert code == 3
    assert "status=MALFORMED, reason=the key holds something other than a stream" in (
        captured.out
    )
    assert "Traceback" not in captured.err


@pytest.mark.redis_server
def test_cli_status_prints_an_aligned_table(
    shared_redis_server: RedisServer,
    sync_client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """status prints a header and one row per instance, columns aligned."""
    beat(sync_client, stream, instance="host-a:1")
    beat(sync_client, stream, Status.DEGRADED, instance="host-bb:22")

    code = run_cli("status", "--redis-url", shared_redis_server.url, "--stream", stream)

    table = capsys.readouterr().out.splitlines()
    assert code == 0
    assert table[0].split() == [
        "INSTANCE",
        "STATUS",
        "AGE",
        "CYCLE_MS",
        "POSITIONS",
        "DECIDED",
        "REASON",
    ]
    assert len(table) == 3
    column = table[0].index("STATUS")
    assert [row[column:].split()[0] for row in table[1:]] == ["OK", "DEGRADED"]
    assert "12.5" in table[1]
    assert "ago" in table[1]


@pytest.mark.redis_server
def test_cli_status_json(
    shared_redis_server: RedisServer,
    sync_client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """status --json gives one object per instance with its figures."""
    beat(sync_client, stream)

    run_cli(
        "status", "--json", "--redis-url", shared_redis_server.url, "--stream", stream
    )

    [row] = json.loads(capsys.readouterr().out)
    assert row["status"] == "OK"
    assert row["active_positions"] == 3
    assert row["loop_cycle_ms"] == 12.5


@pytest.mark.redis_server
def test_cli_tail_prints_each_new_entry(
    shared_redis_server: RedisServer,
    sync_client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """tail prints new entries decoded, one line each, as they arrive."""
    codes: list[int] = []
    tail = threading.Thread(
        target=lambda: codes.append(
            run_cli(
                "tail",
                "--redis-url",
                shared_redis_server.url,
                "--stream",
                stream,
                "--count",
                "2",
            )
        )
    )
    tail.start()
    deadline = time.monotonic() + 10
    while tail.is_alive() and time.monotonic() < deadline:
        beat(sync_client, stream)
        tail.join(0.1)
    sync_client.xadd(stream, {"status": "OK"})
    tail.join(10)

    lines = capsys.readouterr().out.splitlines()
    assert codes == [0]
    assert len(lines) == 2
    assert all("instance=h:1 status=OK cycle_ms=12.5 positions=3" in x for x in lines)


@pytest.mark.redis_server
def test_cli_tail_wrongtype_key_is_a_clear_error(
    shared_redis_server: RedisServer,
    sync_client: Any,
    stream: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """tail on a key that is not a stream exits 3 and says so."""
    sync_client.set(stream, "x")

    code = run_cli("tail", "--redis-url", shared_redis_server.url, "--stream", stream)

    assert code == 3
    assert "something other than a stream" in capsys.readouterr().out


def test_cli_runs_as_python_module() -> None:
    """'python -m exit_heartbeat' works like the console script."""
    result = subprocess.run(
        [sys.executable, "-m", "exit_heartbeat", "check", "--redis-url", CLOSED_URL],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 3
    assert "status=UNREACHABLE" in result.stdout
    assert "Traceback" not in result.stderr


# -- watch, end to end ---------------------------------------------------------


@pytest.mark.redis_server
def test_cli_watch_logs_status_lines_transition_and_alerts(
    shared_redis_server: RedisServer, sync_client: Any, stream: str, tmp_path: Path
) -> None:
    """watch logs Status lines and one STALE alert, runs --on-alert and XADDs."""
    alerts = f"{stream}.alerts"
    marker = tmp_path / "alerted"
    beat(sync_client, stream)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exit_heartbeat",
            "watch",
            "--redis-url",
            shared_redis_server.url,
            "--stream",
            stream,
            "--interval",
            "0.2",
            "--stale-after",
            "0.6",
            "--alert-stream",
            alerts,
            "--on-alert",
            f"echo $EXIT_HEARTBEAT_VERDICT >> {marker}",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JOURNAL_STREAM": ""},
    )
    try:
        for _ in range(8):
            beat(sync_client, stream)
            time.sleep(0.1)
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)

    assert process.returncode == 0
    assert "Status: heartbeat=" in err
    assert "status=OK" in err
    assert err.count("Alert: status=STALE was=OK") == 1
    assert "Traceback" not in err
    assert marker.read_text().split() == ["STALE"]
    [(_, fields)] = sync_client.xrange(alerts)
    assert fields[b"verdict"] == b"STALE"
    assert sync_client.xlen(stream) == 9


@pytest.mark.redis_server
def test_cli_tail_ends_quietly_on_ctrl_c(
    shared_redis_server: RedisServer, sync_client: Any, stream: str
) -> None:
    """SIGINT ends tail with exit 0 and no traceback."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exit_heartbeat",
            "tail",
            "--redis-url",
            shared_redis_server.url,
            "--stream",
            stream,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that started us may ignore SIGINT; the command must not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # Interrupt it once it waits in XREAD BLOCK, not while still starting.
        deadline = time.monotonic() + 30
        while not any(
            client.get("cmd") == "xread" for client in sync_client.client_list()
        ):
            assert time.monotonic() < deadline, "tail never reached XREAD"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)

    assert process.returncode == 0
    assert "Traceback" not in err


@pytest.mark.redis_server
def test_cli_check_pattern_covers_every_matching_stream(
    shared_redis_server: RedisServer,
    sync_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """check --pattern judges each matching stream; the worst one sets the code."""
    prefix = uuid.uuid4().hex
    beat(sync_client, f"{prefix}:a.heartbeat")
    beat(sync_client, f"{prefix}:b.heartbeat", Status.DEGRADED)

    code = run_cli(
        "check", "--redis-url", shared_redis_server.url, "--pattern", f"{prefix}:*"
    )

    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert len(lines) == 2
    assert f"stream={prefix}:a.heartbeat" in lines[0]
    assert "status=DEGRADED" in lines[1]


@pytest.mark.redis_server
def test_cli_check_pattern_matching_nothing_is_missing(
    shared_redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pattern that matches no stream exits 2: nothing found is not OK."""
    code = run_cli(
        "check", "--redis-url", shared_redis_server.url, "--pattern", "nothing:*"
    )

    assert code == 2
    assert "status=MISSING" in capsys.readouterr().out
