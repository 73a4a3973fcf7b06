"""The scripts in examples/: each runs, publishes what it should, and stops.

Every example runs in a subprocess with the venv's Python, as a user would run
it, for a second or two; its entries are then read back from Redis and
decoded. The Redis server is fakeredis served over TCP (the demo's embedded
server, here started by the test) or a real redis-server of the test's own.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from exit_heartbeat import DEFAULT_STREAM, HeartbeatEntry, Status, decode_entry
from exit_heartbeat.demo import EmbeddedRedis, describe_entry
from tests.server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
V3_5 = EXAMPLES / "exitbrain_v3_5"

# Longest a whole example run may take, start-up and clean stop included.
RUN_TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class Example:
    """An example script and what its entries must show."""

    script: str
    service: str
    args: tuple[str, ...]
    interval_s: float

    def __str__(self) -> str:
        return self.script


ALL_EXAMPLES = [
    Example("decorated_service.py", "ExitBrain", ("--interval", "0.2"), 0.2),
    Example("mixin_service.py", "ExitBrainService", ("--interval", "0.2"), 0.2),
    Example("direct_service.py", "LegacyExitBrain", ("--interval", "0.2"), 0.2),
    # The patched v3.5 service keeps attach_heartbeat's default interval.
    Example("exitbrain_v3_5/run.py", "ExitBrain", ("--seconds", "2.3"), 1.0),
]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<script>`` with this Python and capture its output."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=ROOT,
        check=False,
    )


def run_example(example: Example, url: str) -> subprocess.CompletedProcess[str]:
    """Run an example against ``url`` for a second or so."""
    args = ["--redis-url", url, "--seconds", "1.2", *example.args]
    return run_script(example.script, *args)


def published(url: str) -> list[HeartbeatEntry]:
    """Every entry of the default stream at ``url``, decoded, oldest first."""
    client = redis.Redis.from_url(url)
    try:
        return [decode_entry(fields) for _, fields in client.xrange(DEFAULT_STREAM)]
    finally:
        client.close()


def check_entries(example: Example, entries: list[HeartbeatEntry]) -> None:
    """Healthy beats in sequence, from the right service, then one STOPPED."""
    assert len(entries) >= 3, entries
    assert [entry.seq for entry in entries] == list(range(len(entries)))
    assert [entry.status for entry in entries[:-1]] == [Status.OK] * (
        len(entries) - 1
    ), [entry.reason for entry in entries]
    assert entries[-1].status is Status.STOPPED
    assert {entry.service for entry in entries} == {example.service}
    assert {entry.interval_s for entry in entries} == {example.interval_s}

    last = entries[-1]
    assert last.active_positions_count > 0
    assert last.last_decision_ts is not None
    assert last.timestamp - last.last_decision_ts < 5.0
    assert last.loop_cycle_ms > 0.0


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedRedis]:
    """The demo's embedded server (fakeredis over TCP), run by the tests."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def embedded_url(embedded: EmbeddedRedis) -> str:
    """The embedded server's URL, with the heartbeat stream emptied."""
    client = redis.Redis.from_url(embedded.url)
    client.delete(DEFAULT_STREAM)
    client.close()
    return embedded.url


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=str)
def test_example_publishes_healthy_beats_then_stopped_on_fakeredis(
    example: Example, embedded_url: str
) -> None:
    """Against fakeredis, an example's entries decode and end in STOPPED."""
    result = run_example(example, embedded_url)

    assert result.returncode == 0, result.stderr
    check_entries(example, published(embedded_url))


@pytest.mark.redis_server
@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=str)
def test_example_publishes_healthy_beats_then_stopped_on_redis_server(
    example: Example, redis_server: RedisServer
) -> None:
    """Against a real redis-server, an example's entries decode and end in STOPPED."""
    result = run_example(example, redis_server.url)

    assert result.returncode == 0, result.stderr
    check_entries(example, published(redis_server.url))


def test_example_prints_each_entry_it_publishes(embedded_url: str) -> None:
    """An example prints one line per entry, with the entry's ID and status."""
    result = run_example(ALL_EXAMPLES[0], embedded_url)
    entries = redis.Redis.from_url(embedded_url).xrange(DEFAULT_STREAM)

    lines = [line for line in result.stdout.splitlines() if " seq=" in line]
    assert [line.split()[0] for line in lines] == [
        entry_id.decode() for entry_id, _ in entries
    ]
    assert " STOPPED " in lines[-1]


@pytest.mark.redis_server
def test_example_rides_out_a_redis_restart(redis_server: RedisServer) -> None:
    """Redis going away mid-run costs a line of output, not the example."""
    script = EXAMPLES / "decorated_service.py"
    args = ["--redis-url", redis_server.url, "--seconds", "4", "--interval", "0.2"]
    process = subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        # Wait for the first entry, so the outage falls inside the run.
        assert process.stdout is not None
        while " seq=" not in process.stdout.readline():
            pass
        redis_server.kill()
        time.sleep(1.0)
        redis_server.start()
        rest, errors = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        process.kill()

    assert process.returncode == 0, errors
    assert rest.count("cannot read") == 1
    assert " STOPPED " in rest.splitlines()[-1]


def test_example_runs_on_its_embedded_server_without_url() -> None:
    """With no --redis-url, an example serves Redis itself and says where."""
    result = run_script("decorated_service.py", "--seconds", "0.6", "--interval", "0.2")

    assert result.returncode == 0, result.stderr
    assert re.search(r"embedded .* redis://127\.0\.0\.1:\d+/0", result.stdout)
    assert " STOPPED " in result.stdout.splitlines()[-1]


def test_exitbrain_v3_5_before_the_patch_publishes_nothing(embedded_url: str) -> None:
    """The unpatched v3.5 service runs and publishes no heartbeat."""
    result = run_script("exitbrain_v3_5/run.py", "before", "--redis-url", embedded_url)

    assert result.returncode == 0, result.stderr
    assert "exit plans generated" in result.stdout
    assert published(embedded_url) == []


def test_describe_entry_shows_status_figures_and_reason() -> None:
    """An entry's line names its status, positions, cycle time and reason."""
    entry = HeartbeatEntry(
        timestamp=1_800_000_010.0,
        status=Status.DEGRADED,
        reason="cycle_ms=612>500",
        active_positions_count=3,
        last_decision_ts=1_800_000_008.5,
        loop_cycle_ms=612.0,
        cycles=40,
        seq=7,
    )

    line = describe_entry(entry)

    assert line.split() == [
        "seq=7",
        "DEGRADED",
        "positions=3",
        "loop_cycle_ms=612.0",
        "decision_age_s=1.5",
        "cycles=40",
        "reason=cycle_ms=612>500",
    ]


def test_exitbrain_v3_5_readme_diff_matches_the_two_files() -> None:
    """The patch shown in the v3.5 README is the diff of its two files."""
    before = (V3_5 / "exit_brain_before.py").read_text().splitlines(keepends=True)
    after = (V3_5 / "exit_brain_after.py").read_text().splitlines(keepends=True)
    path = "microservices/exitbrain_v3_5/exit_brain.py"
    expected = "".join(difflib.unified_diff(before, after, f"a/{path}", f"b/{path}"))

    readme = (V3_5 / "README.md").read_text()
    shown = re.search(r"```diff\n(.*?)```", readme, re.DOTALL)

    assert shown is not None, "the README has no ```diff block"
    assert shown.group(1) == expected


def test_exitbrain_v3_5_patch_is_a_handful_of_lines() -> None:
    """The v3.5 patch adds a few lines and removes none."""
    before = (V3_5 / "exit_brain_before.py").read_text().splitlines()
    after = (V3_5 / "exit_brain_after.py").read_text().splitlines()
    changes = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]

    assert all(line.startswith("+") for line in changes), changes
    assert len([line for line in changes if line.strip("+ ")]) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--redis-url", "http://example.com"), "is not a Redis URL"),
        (("--seconds", "soon"), "is not a number of seconds"),
        (("--seconds", "-1"), "must be a positive number of seconds"),
        (("--interval", "0"), "must be a positive number of seconds"),
    ],
)
def test_example_rejects_bad_arguments_with_a_message(
    args: tuple[str, ...], message: str
) -> None:
    """A bad argument gets exit code 2 and a one-line reason, no traceback."""
    result = run_script("decorated_service.py", *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_example_says_when_redis_cannot_be_reached(unused_tcp_port: int) -> None:
    """An unreachable server gets exit code 1 and a hint, no traceback."""
    url = f"redis://:secret@127.0.0.1:{unused_tcp_port}/0"
    result = run_script("decorated_service.py", "--redis-url", url, "--seconds", "1")

    assert result.returncode == 1
    assert "cannot reach Redis" in result.stderr
    assert "secret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
