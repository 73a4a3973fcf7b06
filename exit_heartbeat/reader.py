"""Reading heartbeat streams: what is new since the last pass, in one round trip.

A `StreamReader` remembers, for every watched stream, the ID of the newest
entry it has read, and for every instance that publishes there, that
instance's newest entry. Each `StreamReader.read` then sends one pipeline:
the server's ``TIME``, one ``XREAD`` per thousand streams from their last seen
IDs (so a pass over quiet streams costs next to nothing on either side), and
an ``XREVRANGE`` of the newest entries for each stream not read before.

Instances are forgotten, so that memory stays bounded, when their newest
entry grows older than ``forget_after_s``, when a clean stop of theirs is
followed by another instance's entries, and when a later start on the same
host (instances are named ``host:pid``) shows that the process was replaced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from exit_heartbeat.clock import Clock
from exit_heartbeat.entry import HeartbeatEntry, decode_entry
from exit_heartbeat.errors import HeartbeatError, MalformedEntryError
from exit_heartbeat.status import Status

__all__ = ["Forgotten", "Latest", "ReadPass", "StreamReader", "UnreachableError"]

logger = logging.getLogger(__name__)

# One XREAD names at most this many streams: it keeps one reply and one
# failing key (WRONGTYPE fails the whole command) from spoiling the rest.
_XREAD_CHUNK = 1000

# Streams read for the first time are read in round trips of at most this
# many entries, so that each stays well inside the timeout however many
# streams are watched; progress is kept from one round trip to the next.
_FIRST_BATCH_ENTRIES = 2000

# Keys whose existence is asked in one round trip.
_EXISTS_BATCH = 1000

# Streams with no new entry for this long are asked, with EXISTS and at most
# this often, whether they still exist: XREAD alone cannot tell a deleted
# stream from a quiet one.
_IDLE_CHECK_S = 10.0

# XREAD returns at most this many new entries per stream; a stream that hit
# the cap is read again from its newest entries, since those are what count.
_CATCH_UP_COUNT = 1000

# An instance name longer than this is taken for garbage, not a name.
_MAX_INSTANCE_CHARS = 200

# SCAN asks for this many keys per call.
_SCAN_COUNT = 1000

# Errors that mean the server could not be asked at all.
_UNREACHABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    asyncio.TimeoutError,
)


class UnreachableError(HeartbeatError):
    """Redis could not be reached, or refused to answer (``NOAUTH``, ...).

    Attributes:
        reason: What went wrong, in a few words, with no password in it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Latest:
    """The newest entry of one instance in one stream.

    Attributes:
        stream: The stream key.
        instance: The entry's ``instance`` field; ``""`` when the entry names
            none or is too broken to say.
        entry_id: The entry's stream ID.
        id_ms: The millisecond part of the ID: when the server added it.
        entry: The decoded entry, ``None`` when it could not be decoded.
        error: Why it could not be decoded (field and reason), else ``""``.
        started_ms: When the instance began publishing, estimated from the
            entry's sequence number; used to recognise a restart.
    """

    stream: str
    instance: str
    entry_id: str
    id_ms: int
    entry: HeartbeatEntry | None
    error: str = ""
    started_ms: float = 0.0

    @property
    def order(self) -> tuple[int, int]:
        """The ID as a pair of numbers, for comparing two IDs."""
        return _id_order(self.entry_id)


@dataclasses.dataclass(frozen=True)
class Forgotten:
    """An instance the reader stopped tracking, and why.

    Attributes:
        latest: Its newest entry when it was forgotten.
        why: In a few words, such as ``replaced by host:4242``.
        replaced: Whether another instance took over (a restart, or a clean
            stop with others going on), which ends any trouble it was in.
    """

    latest: Latest
    why: str
    replaced: bool = False


@dataclasses.dataclass(frozen=True)
class ReadPass:
    """What one `StreamReader.read` found.

    Attributes:
        server_time_s: The Redis server's Unix time at the read.
        streams: Every stream watched in this pass.
        latest: Newest entry of every tracked instance, by (stream, instance).
        fresh: Subjects whose newest entry arrived in this pass.
        empty: Streams with no instance: ``"no such key"`` or ``"no entries"``.
        problems: Streams that could not be read as streams, and why.
        forgotten: Instances dropped in this pass.
    """

    server_time_s: float
    streams: tuple[str, ...]
    latest: dict[tuple[str, str], Latest]
    fresh: frozenset[tuple[str, str]]
    empty: dict[str, str]
    problems: dict[str, str]
    forgotten: tuple[Forgotten, ...]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _id_order(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    try:
        return int(millis), int(sequence or 0)
    except ValueError:
        return 0, 0


def _raw_instance(fields: Any) -> Any:
    if not isinstance(fields, dict):
        return None
    raw = fields.get(b"instance", fields.get("instance"))
    # Unhashable values cannot come from Redis, but a test double may send
    # anything; they all fall in one bucket.
    return raw if isinstance(raw, bytes | str) else None


def _instance_of(fields: Any) -> str:
    # A broken entry may still say whose it is; when it does not, it counts
    # as the stream's own (instance ""), judged until a readable one follows.
    if not isinstance(fields, dict):
        return ""
    raw = fields.get(b"instance", fields.get("instance"))
    if raw is None:
        return ""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    except UnicodeDecodeError:
        return ""
    return text if len(text) <= _MAX_INSTANCE_CHARS else ""


def _host_of(instance: str) -> str | None:
    host, sep, pid = instance.rpartition(":")
    return host if sep and host and pid.isdigit() else None


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class StreamReader:
    """Reads heartbeat streams pass after pass, remembering where it stopped.

    Not safe for two concurrent `read` calls; the watchdog makes one at a time.
    """

    def __init__(
        self,
        redis: Any,
        streams: Sequence[str],
        pattern: str | None,
        *,
        timeout_s: float,
        clock: Clock | None = None,
        rescan_s: float = 30.0,
        forget_after_s: float = 3600.0,
        initial_count: int = 20,
        exclude: Iterable[str] = (),
        server_clock: Callable[[], float] | None = None,
    ) -> None:
        """Remember what to read; read nothing yet.

        Args:
            redis: A ``redis.asyncio`` client.
            streams: Stream keys always watched.
            pattern: A SCAN pattern for more streams, or ``None``.
            timeout_s: Longest wait for one round trip.
            clock: Times the rescans; needed only with a pattern.
            rescan_s: Seconds between two SCANs for the pattern.
            forget_after_s: Forget instances whose newest entry is older.
            initial_count: Newest entries read from a stream seen first.
            exclude: Keys never watched even when the pattern matches them.
            server_clock: Replaces the server's ``TIME``, for tests.
        """
        self._redis = redis
        self._explicit = dict.fromkeys(streams)
        self._pattern = pattern
        self._timeout_s = timeout_s
        self._clock = clock
        self._rescan_s = rescan_s
        self._forget_after_s = forget_after_s
        self._initial_count = initial_count
        self._exclude = frozenset(exclude)
        self._server_clock = server_clock

        self._found: dict[str, None] = {}
        self._vanished: set[str] = set()
        self._next_scan_s = -math.inf
        self._last_ids: dict[str, str] = {}
        self._last_ms: dict[str, int] = {}
        self._server_s = -math.inf
        self._next_idle_check_s = -math.inf
        # Newest entry of each instance, by stream then instance.
        self._latest: dict[str, dict[str, Latest]] = {}

    @property
    def streams(self) -> tuple[str, ...]:
        """Every stream watched now: the given ones, then those found."""
        found = (s for s in self._found if s not in self._explicit)
        return (*self._explicit, *found)

    def tracked(self, stream: str) -> bool:
        """Whether any instance of ``stream`` is remembered."""
        return bool(self._latest.get(stream))

    async def read(self) -> ReadPass:
        """Read what is new in every watched stream.

        Returns:
            What the pass found, instances it forgot included.

        Raises:
            UnreachableError: Redis did not answer within the timeout, the
                connection failed, or the server refused the commands.
        """
        try:
            if self._pattern is not None:
                await self._maybe_scan()
            return await self._read()
        except _UNREACHABLE as exc:
            if isinstance(exc, asyncio.TimeoutError):
                raise UnreachableError(
                    f"no reply within {self._timeout_s:g}s"
                ) from None
            raise UnreachableError(_error_text(exc)) from None
        except (ResponseError, AuthenticationError) as exc:
            raise UnreachableError(_error_text(exc)) from None

    async def _maybe_scan(self) -> None:
        assert self._pattern is not None
        now_s = self._clock.monotonic() if self._clock is not None else 0.0
        if now_s < self._next_scan_s:
            return

        found: dict[str, None] = {}
        cursor: Any = 0
        while True:
            cursor, keys = await asyncio.wait_for(
                self._redis.scan(
                    cursor, match=self._pattern, count=_SCAN_COUNT, _type="stream"
                ),
                self._timeout_s,
            )
            for key in keys:
                name = _text(key)
                if name not in self._exclude:
                    found[name] = None
            if int(cursor) == 0:
                break

        self._vanished.clear()
        for name in self._found:
            # A stream that vanished is kept while its instances are: they
            # go STALE and are forgotten in time, rather than disappearing.
            if name not in found and self.tracked(name):
                found[name] = None
                self._vanished.add(name)
        added = sum(1 for name in found if name not in self._found)
        if added:
            logger.info("streams found pattern=%s new=%d", self._pattern, added)
        self._found = found
        self._next_scan_s = now_s + self._rescan_s

    async def _execute(self, pipe: Any) -> list[Any]:
        reply = await asyncio.wait_for(
            pipe.execute(raise_on_error=False), self._timeout_s
        )
        return list(reply)

    async def _read(self) -> ReadPass:
        streams = self.streams
        first = [s for s in streams if s not in self._last_ids]
        known = [s for s in streams if s in self._last_ids]

        # XREAD says nothing of a stream that was deleted; those silent for a
        # while are asked whether they still exist, once in a while, so that
        # a fleet of dead streams does not cost a command each every pass.
        idle: list[str] = []
        if self._server_s >= self._next_idle_check_s:
            idle_ms = (self._server_s - _IDLE_CHECK_S) * 1000.0
            idle = [s for s in known if self._last_ms[s] <= idle_ms]
            self._next_idle_check_s = self._server_s + _IDLE_CHECK_S

        pipe = self._redis.pipeline(transaction=False)
        if self._server_clock is None:
            pipe.time()
        chunks = _batches(known, _XREAD_CHUNK)
        for chunk in chunks:
            pipe.xread({s: self._last_ids[s] for s in chunk}, count=_CATCH_UP_COUNT)
        for stream in idle:
            pipe.exists(stream)
        asked = self._server_clock is None or chunks
        replies = await self._execute(pipe) if asked else []

        if self._server_clock is None:
            server_time_s = self._server_time(replies.pop(0))
        else:
            server_time_s = self._server_clock()
        self._server_s = server_time_s

        fresh: set[tuple[str, str]] = set()
        empty: dict[str, str] = {}
        problems: dict[str, str] = {}
        forgotten: list[Forgotten] = []
        for stream, exists in zip(idle, replies[len(chunks) :], strict=True):
            if exists == 0:
                forgotten.extend(self._deleted(stream))
                empty[stream] = "no such key"
        for chunk, reply in zip(chunks, replies[: len(chunks)], strict=True):
            if isinstance(reply, Exception):
                # Rare: a key of the chunk is no longer a stream. Reading
                # each afresh gives each its own answer.
                self._check_refused(reply)
                first.extend(chunk)
            else:
                # A stream that caught up on more entries than one XREAD
                # gives is read afresh too: its newest entries are what count.
                first.extend(self._take_new(reply, fresh))
        await self._read_first(first, fresh, empty, problems)

        forgotten += self._prune(server_time_s)
        latest = {
            (stream, instance): entry
            for stream, group in self._latest.items()
            for instance, entry in group.items()
        }
        return ReadPass(
            server_time_s=server_time_s,
            streams=streams,
            latest=latest,
            fresh=frozenset(key for key in fresh if key in latest),
            empty={s: why for s, why in empty.items() if not self.tracked(s)},
            problems=problems,
            forgotten=tuple(forgotten),
        )

    async def _read_first(
        self,
        streams: list[str],
        fresh: set[tuple[str, str]],
        empty: dict[str, str],
        problems: dict[str, str],
    ) -> None:
        # Newest entries of streams not read before, in batches so that each
        # round trip stays well inside the timeout however many streams.
        blank: list[str] = []
        size = max(1, _FIRST_BATCH_ENTRIES // self._initial_count)
        for batch in _batches(streams, size):
            pipe = self._redis.pipeline(transaction=False)
            for stream in batch:
                self._forget_position(stream)
                pipe.xrevrange(stream, "+", "-", count=self._initial_count)
            for stream, entries in zip(batch, await self._execute(pipe), strict=True):
                if isinstance(entries, Exception):
                    self._check_refused(entries)
                    problems[stream] = _problem(entries)
                elif entries:
                    self._ingest(stream, entries, fresh)
                else:
                    blank.append(stream)

        for batch in _batches(blank, _EXISTS_BATCH):
            pipe = self._redis.pipeline(transaction=False)
            for stream in batch:
                pipe.exists(stream)
            for stream, exists in zip(batch, await self._execute(pipe), strict=True):
                known = exists is True or (isinstance(exists, int) and exists > 0)
                empty[stream] = "no entries" if known else "no such key"

    def _forget_position(self, stream: str) -> None:
        self._last_ids.pop(stream, None)
        self._last_ms.pop(stream, None)

    def _deleted(self, stream: str) -> list[Forgotten]:
        group = self._latest.pop(stream, {})
        self._forget_position(stream)
        self._vanished.discard(stream)
        if stream not in self._explicit:
            self._found.pop(stream, None)
        return [
            Forgotten(latest, "the stream was deleted") for latest in group.values()
        ]

    @staticmethod
    def _server_time(reply: Any) -> float:
        if isinstance(reply, Exception):
            raise UnreachableError(f"TIME refused: {_error_text(reply)}")
        seconds, micros = reply
        return int(seconds) + int(micros) / 1e6

    @staticmethod
    def _check_refused(reply: Exception) -> None:
        # Authentication and permission errors come back on every command:
        # the server is up but will not answer, which is no stream's fault.
        text = str(reply)
        if isinstance(reply, AuthenticationError) or text.startswith(
            ("NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "MASTERDOWN", "BUSY")
        ):
            raise UnreachableError(_error_text(reply))
        if isinstance(reply, _UNREACHABLE):
            raise UnreachableError(_error_text(reply))

    def _take_new(self, reply: Any, fresh: set[tuple[str, str]]) -> list[str]:
        if not reply:
            return []
        items = reply.items() if isinstance(reply, dict) else reply
        capped: list[str] = []
        for name, entries in items:
            stream = _text(name)
            if (
                entries
                and isinstance(entries[0], list)
                and entries[0]
                and isinstance(entries[0][0], list | tuple)
            ):
                # RESP3 wraps the entries in one more list.
                entries = entries[0]
            self._ingest(stream, entries, fresh)
            if len(entries) >= _CATCH_UP_COUNT:
                capped.append(stream)
        return capped

    def _ingest(self, stream: str, entries: Any, fresh: set[tuple[str, str]]) -> None:
        newest = self._last_ids.get(stream)
        newest_order = _id_order(newest) if newest is not None else (-1, -1)

        # Only the newest entry of each instance counts, so only that one is
        # decoded; entries are told apart by their raw instance field first.
        candidates: dict[Any, tuple[tuple[int, int], str, Any]] = {}
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            order = _id_order(entry_id)
            if order > newest_order:
                newest, newest_order = entry_id, order
            raw = _raw_instance(fields)
            known = candidates.get(raw)
            if known is None or order > known[0]:
                candidates[raw] = (order, entry_id, fields)

        group = self._latest.setdefault(stream, {})
        for order, entry_id, fields in candidates.values():
            latest = self._decode(stream, entry_id, order[0], fields)
            known_latest = group.get(latest.instance)
            if known_latest is None or order > known_latest.order:
                group[latest.instance] = latest
                fresh.add((stream, latest.instance))

        if newest is not None:
            self._last_ids[stream] = newest
            self._last_ms[stream] = newest_order[0]
        _drop_superseded_garbage(group)

    @staticmethod
    def _decode(stream: str, entry_id: str, id_ms: int, fields: Any) -> Latest:
        try:
            if not isinstance(fields, dict):
                raise MalformedEntryError("*", "the entry has no fields")
            entry = decode_entry(fields)
        except MalformedEntryError as exc:
            return Latest(
                stream, _instance_of(fields), entry_id, id_ms, None, str(exc), id_ms
            )
        started_ms = id_ms - entry.seq * entry.interval_s * 1000.0
        return Latest(stream, entry.instance, entry_id, id_ms, entry, "", started_ms)

    def _prune(self, server_time_s: float) -> list[Forgotten]:
        forgotten: list[Forgotten] = []
        now_ms = server_time_s * 1000.0
        for stream in list(self._latest):
            group = self._latest[stream]
            vanished = stream in self._vanished
            if len(group) == 1 and not vanished:
                # The newest entry of a stream that still exists is never
                # forgotten for its age: it is what the stream has to say.
                continue
            newest = max(group.values(), key=lambda latest: latest.order)
            for latest in list(group.values()):
                ageless = latest is newest and not vanished
                why, replaced = _forget_reason(
                    latest, group, now_ms, self._forget_after_s, ageless
                )
                if why:
                    del group[latest.instance]
                    forgotten.append(Forgotten(latest, why, replaced))
            if not group:
                del self._latest[stream]
                self._forget_position(stream)
                self._vanished.discard(stream)
                self._found.pop(stream, None)
        return forgotten


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _problem(error: Exception) -> str:
    if "WRONGTYPE" in str(error):
        return "the key holds something other than a stream"
    return _error_text(error)


def _drop_superseded_garbage(group: dict[str, Latest]) -> None:
    # An unreadable entry that names no instance stands for the whole stream
    # only while nothing readable came after it.
    garbage = group.get("")
    if garbage is None or garbage.entry is not None:
        return
    for latest in group.values():
        if latest.entry is not None and latest.order > garbage.order:
            del group[""]
            return


def _forget_reason(
    latest: Latest,
    group: dict[str, Latest],
    now_ms: float,
    forget_after_s: float,
    ageless: bool,
) -> tuple[str, bool]:
    age_s = (now_ms - latest.id_ms) / 1000.0
    if age_s > forget_after_s and not ageless:
        return f"no entry for {age_s:.0f}s", False
    entry = latest.entry
    if entry is None:
        return "", False

    others = [
        other
        for other in group.values()
        if other is not latest
        and other.entry is not None
        and other.entry.status is not Status.STOPPED
    ]
    if entry.status is Status.STOPPED:
        for other in others:
            if other.order > latest.order:
                name = other.instance or "another instance"
                return f"stopped; {name} publishes", True
        return "", False

    host = _host_of(latest.instance)
    if host is None:
        return "", False
    for other in others:
        assert other.entry is not None
        if (
            _host_of(other.instance) == host
            and other.entry.service == entry.service
            and other.started_ms > latest.id_ms
        ):
            return f"replaced by {other.instance}", True
    return "", False
