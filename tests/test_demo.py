"""``exit-heartbeat demo`` and the embedded Redis server it runs on.

The demo tests run the real command in a subprocess at a few times the normal
speed: the scripted day then takes about seven seconds. What they check is the
order of the watchdog's verdicts, never how long each took.
"""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import sys

import pytest
import redis

from exit_heartbeat._scripted import Pace, Phase, Sighting, day
from exit_heartbeat.demo import (
    EmbeddedRedis,
    EmbeddedRedisError,
    _Console,
    _summary,
    run_demo,
)
from exit_heartbeat.verdict import Verdict
from tests.server import RedisServer

# Fast enough for a test, slow enough that a busy machine still sees each step.
SPEED = "3"

# Longest a whole demo run may take, start-up included.
RUN_TIMEOUT_S = 90

# What the watchdog must say during the scripted day, in this order: the
# verdict, and for DEGRADED the figure of the rule that must fire.
SCRIPTED_DAY = [
    ("OK", ""),
    ("DEGRADED", "cycle_ms="),
    ("DEGRADED", "no_decision_s="),
    ("DEGRADED", "no_cycle_s="),
    ("STALE", ""),
    ("OK", ""),
    ("STOPPED", ""),
]

WATCHDOG_LINE = re.compile(r"^\s*[\d.]+s\s+watchdog\s+(\S+)\s*(.*)$")


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m exit_heartbeat demo`` with ``args``, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "exit_heartbeat", "demo", *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def watchdog_lines(output: str) -> list[tuple[str, str]]:
    """The verdict and the rest of each watchdog line of the demo's output."""
    found = []
    for line in output.splitlines():
        match = WATCHDOG_LINE.match(line)
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def in_order(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The steps of the scripted day found in ``lines``, matched in order."""
    matched: list[tuple[str, str]] = []
    steps = iter(SCRIPTED_DAY)
    step = next(steps)
    for verdict, rest in lines:
        if verdict == step[0] and step[1] in rest:
            matched.append(step)
            step = next(steps, ("", "never"))
    return matched


def test_demo_shows_every_verdict_of_the_day_in_order() -> None:
    """The demo exits 0 and its watchdog says each scripted verdict in order."""
    result = run_command("--speed", SPEED)

    assert result.returncode == 0, result.stdout + result.stderr
    assert in_order(watchdog_lines(result.stdout)) == SCRIPTED_DAY, result.stdout
    assert "The watchdog saw all 7 expected verdicts" in result.stdout


def test_demo_prints_the_url_of_its_embedded_server_and_no_colour_when_piped() -> None:
    """Without --redis-url the demo says where it serves Redis; piped, no ANSI."""
    result = run_command("--speed", "10")

    assert re.search(
        r"exit-heartbeat watch --redis-url redis://127\.0\.0\.1:\d+/0 --stream ",
        result.stdout,
    )
    assert "\033[" not in result.stdout


def test_demo_shows_the_library_log_lines_only_with_verbose() -> None:
    """-v adds the heartbeat's and the watchdog's log lines on stderr."""
    quiet = run_command("--speed", "10")
    verbose = run_command("--speed", "10", "-v")

    assert "exit_heartbeat" not in quiet.stderr
    assert "exit_heartbeat.watchdog: Status: heartbeat=" in verbose.stderr
    assert "exit_heartbeat.heartbeat: heartbeat started" in verbose.stderr


def test_demo_colours_the_verdicts_on_a_terminal() -> None:
    """With colour on, as on a terminal, verdicts are wrapped in ANSI colours."""
    out = io.StringIO()

    code = run_demo(speed=10, out=out, colour=True)

    assert code == 0, out.getvalue()
    assert "\033[32mOK" in out.getvalue()
    assert "\033[33mDEGRADED" in out.getvalue()


def test_demo_stops_quietly_when_its_reader_goes_away() -> None:
    """Output piped into a reader that quits (| head) ends the demo, no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "exit_heartbeat", "demo", "--speed", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()

    _, errors = process.communicate(timeout=RUN_TIMEOUT_S)

    assert process.returncode == 1
    assert "Traceback" not in errors
    assert "cannot use Redis" not in errors


@pytest.mark.redis_server
def test_demo_runs_on_a_redis_server_given_by_url(redis_server: RedisServer) -> None:
    """With --redis-url the demo runs its day on that server, not its own."""
    result = run_command("--speed", SPEED, "--redis-url", redis_server.url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert in_order(watchdog_lines(result.stdout)) == SCRIPTED_DAY, result.stdout
    client = redis.Redis.from_url(redis_server.url)
    assert client.xlen("quantum:stream:exit_brain_demo.heartbeat") > 0
    client.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--speed", "fast"), "is not a number"),
        (("--speed", "0"), "give a factor from 0.1 to 10"),
        (("--redis-url", "localhost:6379"), "is not a Redis URL"),
        (("--seconds", "5"), "unrecognized arguments"),
    ],
)
def test_demo_rejects_bad_arguments_with_a_message(
    args: tuple[str, ...], message: str
) -> None:
    """A bad argument gets a usage exit code and a reason, no traceback."""
    result = run_command(*args)

    assert result.returncode == 3
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_says_when_the_redis_server_cannot_be_reached(
    unused_tcp_port: int,
) -> None:
    """An unreachable --redis-url gets exit code 1, a reason and no password."""
    url = f"redis://:hunter2@127.0.0.1:{unused_tcp_port}/0"
    result = run_command("--redis-url", url)

    assert result.returncode == 1
    assert "cannot use Redis" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def sightings_of_the_day(began_s: list[float], phases: list[Phase]) -> list[Sighting]:
    """One sighting of each step's expected verdict, half a second into it."""
    return [
        Sighting(
            at_s=start_s + 0.5,
            verdict=phase.verdict,
            reason="" if phase.rule is None else f"{RULE_FIGURES[phase.rule]}=9>1",
            age_s=0.1,
        )
        for start_s, phase in zip(began_s, phases, strict=True)
    ]


RULE_FIGURES = {"cycle": "cycle_ms", "decision": "no_decision_s", "stall": "no_cycle_s"}


def test_demo_day_fits_in_thirty_seconds_at_its_default_speed() -> None:
    """The scripted day at speed 1 leaves room for start-up within 30 s."""
    phases = day(Pace())

    assert sum(phase.duration_s for phase in phases) <= 25.0


def test_demo_day_scales_with_speed() -> None:
    """At speed N every step lasts N times less."""
    slow = day(Pace(1.0))
    fast = day(Pace(4.0))

    assert [p.duration_s / 4 for p in slow] == pytest.approx(
        [p.duration_s for p in fast]
    )


def test_demo_summary_passes_when_every_verdict_was_seen_in_order() -> None:
    """Every step's verdict seen in its step makes the run a success."""
    phases = day(Pace(speed=10))
    began_s = [float(number) for number in range(len(phases))]
    out = io.StringIO()

    all_seen = _summary(
        _Console(out, False), phases, began_s, sightings_of_the_day(began_s, phases)
    )

    assert all_seen
    assert "MISSED" not in out.getvalue()


def test_demo_summary_fails_when_verdicts_came_out_of_order() -> None:
    """A step's verdict seen only before the previous step's counts as missed."""
    phases = day(Pace(speed=10))
    began_s = [float(number) for number in range(len(phases))]
    sightings = sightings_of_the_day(began_s, phases)
    # The slow cycle (step 2) is seen only after the decision rule (step 3).
    sightings[1] = dataclasses.replace(sightings[1], at_s=2.9)
    sightings.sort(key=lambda sighting: sighting.at_s)
    out = io.StringIO()

    all_seen = _summary(_Console(out, False), phases, began_s, sightings)

    assert not all_seen
    assert "3. no decisions" in out.getvalue().split("MISSED")[0].splitlines()[-1]


def test_demo_summary_fails_when_a_verdict_was_never_seen() -> None:
    """The summary marks an unseen step MISSED and the run as failed."""
    phases = day(Pace(speed=10))
    began_s = [float(number) for number in range(len(phases))]
    sightings = [
        sighting
        for sighting in sightings_of_the_day(began_s, phases)
        if sighting.verdict is not Verdict.STALE
    ]
    out = io.StringIO()

    all_seen = _summary(_Console(out, False), phases, began_s, sightings)

    assert not all_seen
    assert "MISSED" in out.getvalue()


def test_embedded_redis_serves_the_redis_protocol_until_stopped() -> None:
    """The embedded server answers on its URL, and refuses after stop()."""
    server = EmbeddedRedis().start()
    url = server.url
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        assert client.ping()
        client.xadd("s", {"f": "v"})
        assert client.xlen("s") == 1
    finally:
        client.close()
        server.stop()

    late = redis.Redis.from_url(url, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        late.ping()
    late.close()


def test_embedded_redis_stop_is_safe_to_repeat() -> None:
    """Stopping the embedded server twice, or as a context manager, is harmless."""
    with EmbeddedRedis() as server:
        assert server.url.startswith("redis://127.0.0.1:")
    server.stop()


def test_embedded_redis_url_needs_a_running_server() -> None:
    """Asking a stopped server for its URL says it is not running."""
    with pytest.raises(EmbeddedRedisError, match="not running"):
        _ = EmbeddedRedis().url


def test_embedded_redis_without_fakeredis_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without fakeredis, start() names the extra to install and --redis-url."""
    monkeypatch.setitem(sys.modules, "fakeredis", None)

    with pytest.raises(EmbeddedRedisError, match=r"exit_heartbeat\[demo\]"):
        EmbeddedRedis().start()
