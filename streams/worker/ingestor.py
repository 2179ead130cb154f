"""The record path: validate records, fold them into session state, batch their rows.

One `Ingestor` per worker process. Records come in batches (Faust's `noack_take`); each batch is
parsed, the sessions it touches that are not in memory are looked up in the lake at once, and
every event is folded. Rows go to a `RowBatch` that the `Committer` writes; records are acked
only after their batch is in the lake. Whatever a record holds, it becomes rows or a dead letter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from lake.tables import DEAD_LETTERS, MESSAGES, REWARDS, SESSIONS, TURNS
from lake.writer import LakeWriter
from schemas import EventValidationError, Judgment, OutcomeReward, Turn, parse_event
from streams.worker.assembly import SessionState, fold_event, session_row, session_status
from streams.worker.committer import Committer
from streams.worker.guard import TP, LogResetError, PartitionGuard, PartitionLog
from streams.worker.hooks import CommitHooks, load_hooks
from streams.worker.rows import RowBatch
from streams.worker.sessions import KnownSessions, LakeSessions, OpenSessions
from streams.worker.settings import WorkerSettings

__all__ = ["Ingestor", "Record"]

log = logging.getLogger(__name__)

# Kafka record timestamps past this (9999-12-31) cannot be stored as a Delta timestamp.
_MAX_RECORD_MS = 253_402_300_799_999
# The dead-letter topic copy stays under the broker's default 1 MiB message limit.
_DLQ_TOPIC_MAX_BYTES = 900_000


class Record(NamedTuple):
    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: float  # seconds since the epoch (Kafka record timestamp)
    ack: Any = None  # a Faust event or message, acknowledged once the record's batch is committed


SendDeadLetter = Callable[[bytes | None, bytes | None, dict[str, str]], Awaitable[Any]]


def dead_letter_copy(key: bytes | None, value: bytes | None, error: str, source: str) -> tuple[bytes | None, dict[str, str]]:
    """The value and headers for the dead-letter topic: whole, or cut to fit with a header saying so."""
    headers = {"error": error[:1000], "source": source}
    if value is not None and len(value) + len(key or b"") > _DLQ_TOPIC_MAX_BYTES:
        headers["truncated"] = f"{len(value)} bytes cut to {_DLQ_TOPIC_MAX_BYTES}; the dead_letters table holds them all"
        value = value[:_DLQ_TOPIC_MAX_BYTES]
    return value, headers


class Ingestor:
    """Turns raw records into committed lake rows."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        send_dead_letter: SendDeadLetter | None = None,
        partition_log: PartitionLog | None = None,
        crash: Callable[[BaseException], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        hooks: CommitHooks | None = None,
        ack: Callable[[Any], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.send_dead_letter = send_dead_letter
        self.crash = crash  # stops the whole worker (a failure an agent restart cannot cure)
        self.clock = clock
        app_id = f"rollout-lake:{settings.topic_epoch}" if settings.topic_epoch else "rollout-lake"
        self.writer = LakeWriter(settings.lake_uri, app_id=app_id)
        self.counters: Counter[str] = Counter()
        self.committer = Committer(
            self.writer, counters=self.counters, hooks=hooks or load_hooks(settings.worker_hooks),
            on_committed=self._on_committed, ack=ack, on_failure=self._commit_failed,
        )
        self.guard = PartitionGuard(self.writer, run=self.committer.run, partition_log=partition_log, clock=clock,
                                    counters=self.counters)
        self.sessions = OpenSessions()
        self.lake_sessions = LakeSessions(settings.lake_uri, storage_options=self.writer.storage_options)
        self._lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-lookup")
        self.batch = RowBatch()
        self._assigned: set[TP] = set()
        self._failure: BaseException | None = None
        # One batch is filled at a time: the record path and the timers' flushes take turns.
        self._lock = asyncio.Lock()
        self._load_open: asyncio.Future[None] | None = None  # open sessions of the last assignment
        # Which session ids the lake holds (None while it is being read): a batch looks up only those.
        self.known: KnownSessions | None = None
        self._known_builds = 0
        self._known_pending: list[str] = []  # ids committed while a filter is being read

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.committer.start()

    async def on_assigned(self, tps: Iterable[TP]) -> None:
        """Load the lake's offsets and open sessions of newly assigned partitions.

        Returns at once (reading the lake and the log can take longer than a rebalance may);
        records of a partition wait in `handle_batch` until it is ready.
        """
        mine = sorted(tp for tp in tps if tp[0] == self.settings.rollout_topic)
        fresh = [tp for tp in mine if tp not in self._assigned]
        self._assigned = set(mine)
        if fresh:
            ready = self.guard.prepare(fresh)
            self._load_open = asyncio.ensure_future(self._load_open_sessions(fresh, ready))

    async def _load_open_sessions(self, tps: list[TP], ready: "asyncio.Future[None]") -> None:
        try:
            await ready
        except BaseException as exc:
            await self._fail(exc)
            return
        topic = self.settings.rollout_topic
        partitions = [p for _, p in tps]

        def load() -> tuple[KnownSessions, dict[str, tuple[SessionState, tuple[str, bool]]]]:
            known = KnownSessions(capacity=max(1 << 16, 2 * self.lake_sessions.count(SESSIONS)))
            sids = self.lake_sessions.scan_ids(topic, partitions, known)
            return known, self.lake_sessions.load(sids, topic=topic, partition_of={})

        # Until the new filter is read, every unknown id is looked up in the lake.
        self.known = None
        self._known_builds += 1
        try:
            known, states = await asyncio.get_running_loop().run_in_executor(self._lookups, load)
        except Exception as exc:  # noqa: BLE001 - their next events load them one by one instead
            log.error("could not read the open sessions of %s from the lake (%r); they load on their next event", tps, exc)
            return
        finally:
            self._known_builds -= 1
        known.update(self._known_pending)
        if not self._known_builds:
            self._known_pending.clear()
            self.known = known
        for sid, (state, stored_status) in states.items():
            if sid not in self.sessions:
                self.sessions.put(sid, state)
                self.sessions.mark_written(sid, stored_status)
        if states:
            log.info("%d open sessions of %s rebuilt from the lake", len(states), tps)

    async def resume_offset(self, tp: TP) -> int:
        """The next offset of an assigned partition to read: one past what the lake holds whole."""
        await self.guard.ready(tp)
        return self.guard.resume_offset(tp)

    async def on_revoked(self, tps: Iterable[TP]) -> None:
        """Commit what we hold before another worker takes these partitions over."""
        await self.flush(wait=True)
        gone = {tp for tp in tps if tp[0] == self.settings.rollout_topic}
        self._assigned -= gone
        self.guard.forget(gone)
        self.sessions.drop_partitions(gone)

    async def stop(self) -> None:
        await self.flush(wait=True)
        self.committer.shutdown()
        self._lookups.shutdown(wait=True)

    async def _fail(self, exc: BaseException) -> None:
        if not isinstance(exc, LogResetError):
            exc = LogResetError(f"could not check the topic's log against the lake: {exc!r}; restart the worker")
        self._failure = exc
        log.critical("LogResetError: %s", exc)
        if self.crash is not None:
            await self.crash(exc)

    async def _commit_failed(self, exc: BaseException) -> None:
        # A store that keeps failing is not cured by retrying here: stop, so a supervisor restarts
        # the worker, which resumes from the lake's offsets (the failed batch was never acked).
        log.critical("stopping the worker after a failed commit (%r): restart it; nothing unacknowledged is lost", exc)
        if self.crash is not None:
            await self.crash(exc)

    # -- records ----------------------------------------------------------------------------

    async def handle(self, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
                     timestamp: float, ack: Any = None) -> None:
        """Process one record (see `handle_batch`)."""
        await self.handle_batch([Record(key, value, topic, partition, offset, timestamp, ack)])

    async def handle_batch(self, records: Sequence[Record]) -> None:
        """Validate, fold and batch records; any record that cannot be stored is a dead letter."""
        if self._failure is not None:
            raise self._failure
        if self.committer.failure is not None:
            raise self.committer.failure
        records = self._assigned_only(records)
        for tp in {(r.topic, r.partition) for r in records}:
            try:
                await self.guard.ready(tp)
            except LogResetError as exc:
                await self._fail(exc)
                raise
        if self._load_open is not None and not self._load_open.done():
            await asyncio.shield(self._load_open)  # the open sessions and the id filter: one read
        # Admission may look at the log and seek (seconds, in the consumer's thread): never under
        # the lock, which a rebalance needs to commit what this worker holds before it lets go.
        admitted = [r for r in records if await self.guard.admit((r.topic, r.partition), r.offset)]
        async with self._lock:
            # A rebalance may have taken partitions away meanwhile: their new owner reads them.
            await self._handle_admitted(self._assigned_only(admitted))

    def _assigned_only(self, records: Sequence[Record]) -> list[Record]:
        """Records of partitions this worker holds (fetched before a revocation, others are stale)."""
        mine = [r for r in records if (r.topic, r.partition) in self._assigned]
        if len(mine) < len(records):
            self.counters["records_of_revoked_partitions"] += len(records) - len(mine)
        return mine

    async def _handle_admitted(self, admitted: list[Record]) -> None:
        parsed: list[tuple[Record, Any, int]] = []
        now = self.clock()
        for r in admitted:
            # Kafka's "no timestamp" is -1: the ingest time stands in, as for an event without `ts`.
            record_ms = int(r.timestamp * 1000) if r.timestamp >= 0 else int(now * 1000)
            try:
                if record_ms > _MAX_RECORD_MS:
                    raise EventValidationError(
                        f"record timestamp {r.timestamp!r} s is after year 9999; "
                        "let the producer set it (CreateTime) or set it to the current time"
                    )
                event = parse_event(r.value if r.value is not None else b"", max_bytes=self.settings.max_event_bytes)
                if r.key is None:
                    raise EventValidationError(
                        f"record has no key; key every record by its session_id ({event.session_id!r}) so a "
                        "session stays in one partition"
                    )
                if r.key != event.session_id.encode():
                    raise EventValidationError(
                        f"record key {r.key[:80]!r} does not match session_id {event.session_id!r}; "
                        "key every record by its session_id so a session stays in one partition"
                    )
            except EventValidationError as exc:
                await self._dead_letter(r, str(exc), min(record_ms, int(now * 1000)))
                continue
            except Exception as exc:  # noqa: BLE001 - no record may stop the worker
                await self._dead_letter(r, f"unexpected error while parsing: {exc!r}"[:1000], int(now * 1000))
                continue
            parsed.append((r, event, record_ms))
        await self._load_missing({e.session_id: r.partition for r, e, _ in parsed})
        batch = self.batch
        for r, event, record_ms in parsed:
            try:
                self._fold(batch, r, event, record_ms)
            except Exception as exc:  # noqa: BLE001 - the record, not the worker, is at fault
                log.exception("folding %s/%s/%s failed", r.topic, r.partition, r.offset)
                await self._dead_letter(r, f"unexpected error while folding: {exc!r}"[:1000], record_ms)
        for r in admitted:
            self.guard.buffered((r.topic, r.partition), r.offset)
            self.batch.track(r.topic, r.partition, r.offset, len(r.value or b"") + len(r.key or b""), self.clock())
            if r.ack is not None:
                self.batch.events.append(r.ack)
        if (len(self.batch) + len(self.batch.dirty_sessions) >= self.settings.batch_max_rows
                or self.batch.approx_bytes >= self.settings.batch_max_bytes):
            await self._flush()

    async def _load_missing(self, partition_of: dict[str, int]) -> None:
        """Bring sessions the batch touches back from the lake, if the lake has them."""
        missing = [sid for sid in partition_of if sid not in self.sessions]
        known = self.known
        if known is not None and missing:
            # An id the filter has never seen is a new session: nothing to read.
            before = len(missing)
            missing = [sid for sid, maybe in zip(missing, known.contains(missing)) if maybe]
            self.counters["new_sessions_not_looked_up"] += before - len(missing)
        if not missing:
            return
        topic = self.settings.rollout_topic
        states = await asyncio.get_running_loop().run_in_executor(
            self._lookups, lambda: self.lake_sessions.load(missing, topic=topic, partition_of=partition_of)
        )
        self.counters["lake_lookups"] += 1
        evict_at = self.clock() + self.settings.evict_after_s
        for sid, (state, stored_status) in states.items():
            if sid not in self.sessions:
                self.counters["sessions_reloaded"] += 1
                self.sessions.put(sid, state)
                self.sessions.mark_written(sid, stored_status)
                if stored_status[1]:  # finalized: leaves again unless this batch changes it
                    self.sessions.expire(sid, evict_at)

    def _fold(self, batch: RowBatch, r: Record, event: Any, record_ms: int) -> None:
        tp = (r.topic, r.partition)
        self.counters[event.type] += 1
        fold = fold_event(self.sessions.get(event.session_id), event, partition=r.partition, offset=r.offset,
                          record_ms=record_ms, topic=r.topic)
        if fold.duplicate:
            self.counters["duplicates"] += 1
        if fold.write_rows:
            if isinstance(event, Turn):
                # A turn makes rows in two tables whose appends run in parallel: a crash can leave
                # one committed without the other, so the rows go to the writer while either
                # table lacks them (its offset check drops the half already in).
                if self.guard.fresh(TURNS, tp, r.offset) or self.guard.fresh(MESSAGES, tp, r.offset):
                    batch.remember(r.topic, r.partition, r.offset, r.key, r.value, record_ms)
                    batch.add_turn(event, r.topic, r.partition, r.offset, record_ms)
            elif isinstance(event, (OutcomeReward, Judgment)) and self.guard.fresh(REWARDS, tp, r.offset):
                batch.remember(r.topic, r.partition, r.offset, r.key, r.value, record_ms)
                batch.add_reward(event, r.topic, r.partition, r.offset, record_ms)
        if fold.changed:
            self.sessions.put(event.session_id, fold.state)
            batch.dirty_sessions.add(event.session_id)

    async def _dead_letter(self, r: Record, error: str, record_ms: int) -> None:
        self.counters["dead_letters"] += 1
        log.warning("dead letter at %s/%s/%s: %s", r.topic, r.partition, r.offset, error)
        if self.guard.fresh(DEAD_LETTERS, (r.topic, r.partition), r.offset):
            self.batch.add_dead_letter(error, r.key, r.value, r.topic, r.partition, r.offset, record_ms)
            await self._send_dead_letter(r.key, r.value, error, f"{r.topic}/{r.partition}/{r.offset}")

    async def _send_dead_letter(self, key: bytes | None, value: bytes | None, error: str, source: str) -> None:
        if self.send_dead_letter is None:
            return
        value, headers = dead_letter_copy(key, value, error, source)
        try:
            await self.send_dead_letter(key, value, headers)
        except Exception as exc:  # noqa: BLE001 - the table row is the durable copy
            self.counters["dead_letter_topic_errors"] += 1
            log.error("could not send the dead letter of %s to the topic (%r); the dead_letters table has it", source, exc)

    # -- sessions rows ----------------------------------------------------------------------

    def _stage_session(self, state: SessionState, batch: RowBatch) -> None:
        row = session_row(state, now_ms=int(self.clock() * 1000), reward_grace_s=self.settings.reward_grace_s,
                          idle_timeout_s=self.settings.idle_timeout_s)
        batch.set_session(row)
        self.sessions.mark_written(row["session_id"], (row["status"], row["finalized"]))

    # -- timers -----------------------------------------------------------------------------

    async def tick_latency(self) -> None:
        """Commit the batch once its oldest record is older than the latency bound."""
        first = self.batch.first_added
        if first is not None and self.clock() - first >= self.settings.batch_max_latency_s:
            await self.flush()
        await self.guard.tick()

    async def tick_sessions(self) -> None:
        """Finalize sessions whose reward grace passed, abandon idle ones, evict finished ones."""
        async with self._lock:
            self._tick_sessions()

    def _tick_sessions(self) -> None:
        now = self.clock()
        now_ms = int(now * 1000)
        for sid, entry in self.sessions.entries():
            current = session_status(entry.state, now_ms=now_ms, reward_grace_s=self.settings.reward_grace_s,
                                     idle_timeout_s=self.settings.idle_timeout_s)
            if current != entry.written_status and sid not in self.batch.dirty_sessions:
                self.batch.dirty_sessions.add(sid)
                self.batch.touch(now)
        evicted = self.sessions.evict(now, keep=self.batch.dirty_sessions)
        if evicted:
            self.counters["sessions_evicted"] += evicted

    # -- commits ----------------------------------------------------------------------------

    async def flush(self, *, wait: bool = False) -> None:
        """Hand the current batch to the committer (one commit in flight at a time)."""
        async with self._lock:
            await self._flush(wait=wait)

    async def _flush(self, *, wait: bool = False) -> None:
        await self.committer.wait()
        batch, self.batch = self.batch, RowBatch()
        if batch.first_added is None and not batch.events and not batch.dirty_sessions:
            if wait:
                await self.committer.wait()
            return
        for sid in batch.dirty_sessions:
            state = self.sessions.get(sid)
            if state is not None:
                self._stage_session(state, batch)
        await self.committer.submit(batch, wait=wait)

    async def _on_committed(self, batch: RowBatch, written: dict[str, int]) -> None:
        self.guard.committed(batch.offsets)
        # Before their sessions may leave memory, the filter knows them.
        if self.known is not None:
            self.known.update(batch.sessions)
        if self._known_builds:
            self._known_pending.extend(batch.sessions)
        self.sessions.committed(batch.sessions.values(), now=self.clock(), evict_after_s=self.settings.evict_after_s,
                                dirty=self.batch.dirty_sessions)
        for (topic, partition, offset), key, value, error in batch.isolated:
            self.counters["dead_letters"] += 1
            await self._send_dead_letter(key, value, error, f"{topic}/{partition}/{offset}")

    @property
    def open_sessions(self) -> int:
        return len(self.sessions)

    @property
    def failure(self) -> BaseException | None:
        """Why the worker cannot go on (a lake it cannot read or write, a reset log), if it cannot."""
        return self._failure or self.committer.failure

    @property
    def assigned(self) -> list[TP]:
        return sorted(self._assigned)
