"""The ingestion pipeline behind the Faust agent: validate, fold into session state, batch, commit.

Acks are manual: an event is acknowledged (so its Kafka offset may be committed) only after the
batch holding its rows is committed to Delta. The Delta app transactions, not Kafka's committed
offsets, decide what is already in the lake, so a crash anywhere replays safely.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from lake.tables import DEAD_LETTERS, REWARDS, SESSIONS, TURNS, MESSAGES
from lake.writer import LakeWriter
from schemas import EventValidationError, RolloutLakeError, Judgment, OutcomeReward, Turn, parse_event
from streams.assembly import fold_event, session_row, session_status
from streams.batch import RowBatch
from streams.settings import WorkerSettings

__all__ = ["Ingestor", "LogResetError", "PartitionLog"]

log = logging.getLogger(__name__)

TP = tuple[str, int]


class LogResetError(RolloutLakeError):
    """The topic's offsets restarted below what the lake already holds."""


class PartitionLog(Protocol):
    """What the Ingestor needs from the topic to hold the consumer to the lake's offsets."""

    async def first_offset_at(self, tp: TP, offset: int) -> int | None:
        """The offset of the first record at or after `offset` (None: the log ends before it)."""

    async def seek(self, tp: TP, offset: int) -> None:
        """Make the consumer deliver `tp` again from `offset`."""


class Ingestor:
    """Turns raw records into committed lake rows; one per worker process.

    With a `PartitionLog` (the Faust worker), the lake's offsets, not the consumer's, decide
    where each partition resumes, and records arrive in offset order: a record after a hole is
    held back and the consumer is sent back to read the hole (Faust can drop buffered records in
    a rebalance and still deliver, and later commit, the ones after them).
    """

    def __init__(
        self,
        settings: WorkerSettings,
        state: MutableMapping[str, Any],
        *,
        send_dead_letter: Callable[[bytes | None, bytes | None, dict[str, str]], Any] | None = None,
        partition_log: PartitionLog | None = None,
        crash: Callable[[BaseException], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.state = state
        self.send_dead_letter = send_dead_letter
        self.crash = crash  # stops the whole worker (a failure an agent restart cannot cure)
        self.partition_log = partition_log
        self._ready: dict[TP, asyncio.Future[None]] = {}  # partition -> its lake offsets loaded and checked
        self._next: dict[TP, int] = {}  # the offset each partition must deliver next
        self._rewinds: dict[TP, tuple[int, float]] = {}  # partition -> (offset sought back to, when)
        self._buffered: dict[TP, int] = {}  # highest offset whose rows sit in a batch
        self.clock = clock
        app_id = f"rollout-lake:{settings.topic_epoch}" if settings.topic_epoch else "rollout-lake"
        self.writer = LakeWriter(settings.lake_uri, app_id=app_id)
        self.batch = RowBatch()
        self.counters: Counter[str] = Counter()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-commit")
        self._in_flight: asyncio.Future[Any] | None = None
        self._failure: BaseException | None = None
        # (table, tp) -> last offset already in that table, loaded on partition assignment.
        self._committed: dict[tuple[str, TP], int] = {}
        # Sessions not finalized yet, watched by the timer: sid -> last (status, finalized) written.
        self._pending: dict[str, tuple[str, bool]] = {}
        self._assigned: set[TP] = set()
        self._rescan = False
        self._commits = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self.writer.ensure_tables)

    async def on_assigned(self, tps: Iterable[TP]) -> None:
        """Start reading the lake's offsets for newly assigned partitions (Delta is the truth).

        Runs in the rebalance and returns at once; records of a partition wait in `handle` until
        its offsets are loaded and checked against the log (reading the log can take longer than
        a rebalance may, and some records can arrive before this hook runs).
        """
        mine = sorted(tp for tp in tps if tp[0] == self.settings.rollout_topic)
        self._assigned = set(mine)
        fresh = [tp for tp in mine if tp not in self._ready]
        if fresh:
            self._prepare(fresh)
        self._rescan = True

    async def resume_offset(self, tp: TP) -> int:
        """The next offset of an assigned partition to read: one past what the lake holds."""
        await asyncio.shield(self._ready[tp])
        return self._next.get(tp, 0)

    def _prepare(self, tps: list[TP]) -> "asyncio.Future[None]":
        future = asyncio.ensure_future(self._load_and_check(tps))
        for tp in tps:
            self._ready[tp] = future
        return future

    async def _load_and_check(self, tps: list[TP]) -> None:
        def load() -> dict[tuple[str, TP], int]:
            out = {}
            for table in (MESSAGES, TURNS, REWARDS, DEAD_LETTERS):
                for tp, offset in self.writer.committed_offsets(table, tps).items():
                    out[(table, tp)] = offset
            return out

        try:
            loaded = await asyncio.get_running_loop().run_in_executor(self._executor, load)
            for key, offset in loaded.items():
                self._committed[key] = max(self._committed.get(key, -1), offset)
            log.info("assigned %s; lake holds offsets %s", tps, {f"{t}:{p}": o for (t, (_, p)), o in loaded.items() if t == TURNS})
            for tp in tps:
                held = max(o for (_, t), o in loaded.items() if t == tp)
                if held < 0:
                    continue
                self._next[tp] = held + 1  # the consumer resumes after what the lake holds, not before
                if self.partition_log is not None and await self.partition_log.first_offset_at(tp, held) is None:
                    raise LogResetError(
                        f"the lake holds offsets up to {held} of {tp[0]}/{tp[1]} but the topic has no record there: "
                        "its log was reset (topic recreated or broker data lost). Set TOPIC_EPOCH to a new "
                        "value (e.g. TOPIC_EPOCH=2) so the worker ingests it as a new log"
                    )
        except BaseException as exc:  # a worker that cannot tell must not skip records as old
            if not isinstance(exc, LogResetError):
                exc = LogResetError(f"could not check the topic's log end against the lake: {exc!r}; restart the worker")
            self._failure = exc
            log.critical("LogResetError: %s", exc)
            if self.crash is not None:
                await self.crash(exc)
            raise exc

    async def on_revoked(self, tps: Iterable[TP]) -> None:
        """Commit what we hold before another worker takes these partitions over."""
        await self.flush(wait=True)
        gone = {tp for tp in tps if tp[0] == self.settings.rollout_topic}
        self._assigned -= gone
        for tp in gone:  # a later assignment reads the lake again
            self._ready.pop(tp, None)
            self._next.pop(tp, None)
            self._rewinds.pop(tp, None)
        for sid in [sid for sid in self._pending if (self.settings.rollout_topic, self._partition_of(sid)) in gone]:
            del self._pending[sid]

    async def stop(self) -> None:
        await self.flush(wait=True)
        self._executor.shutdown(wait=True)

    def _partition_of(self, sid: str) -> int:
        st = self.state.get(sid)
        return -1 if st is None else st["p"]

    # -- per event --------------------------------------------------------------------------

    def _fresh(self, table: str, tp: TP, offset: int) -> bool:
        """Whether the rows of `offset` are in no commit and no batch yet (re-deliveries are)."""
        return offset > max(self._committed.get((table, tp), -1), self._buffered.get(tp, -1))

    async def handle(self, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int, timestamp: float, ack: Any = None) -> None:
        """Process one record; `ack` (a Faust event) is acknowledged once its batch is committed."""
        if self._failure is not None:
            raise self._failure
        tp = (topic, partition)
        ready = self._ready.get(tp)
        if ready is None:  # a record ahead of the assignment hook
            ready = self._prepare([tp])
        if not ready.done():
            await asyncio.shield(ready)
        elif ready.exception() is not None:
            raise ready.exception()
        if self.partition_log is not None and not await self._in_order(tp, offset):
            return  # held back: the consumer reads the hole before it first, then this again
        record_ms = int(timestamp * 1000)
        batch = self.batch
        size = len(value or b"") + len(key or b"")
        try:
            event = parse_event(value if value is not None else b"", max_bytes=self.settings.max_event_bytes)
            if key is not None and key != event.session_id.encode():
                raise EventValidationError(
                    f"record key {key[:80]!r} does not match session_id {event.session_id!r}; "
                    "key every record by its session_id so a session stays in one partition"
                )
        except EventValidationError as exc:
            self.counters["dead_letters"] += 1
            if self._fresh(DEAD_LETTERS, tp, offset):
                batch.add_dead_letter(str(exc), key, value, topic, partition, offset, record_ms)
                if self.send_dead_letter is not None:
                    headers = {"error": str(exc)[:1000], "source": f"{topic}/{partition}/{offset}"}
                    await self.send_dead_letter(key, value, headers)
            log.warning("dead letter at %s/%s/%s: %s", topic, partition, offset, exc)
        else:
            self.counters[event.type] += 1
            fold = fold_event(self.state.get(event.session_id), event, partition=partition, offset=offset, record_ms=record_ms)
            if fold.changed:
                self.state[event.session_id] = fold.state
            if fold.duplicate:
                self.counters["duplicates"] += 1
            if fold.write_rows:
                if isinstance(event, Turn):
                    if self._fresh(TURNS, tp, offset):
                        batch.add_turn(event, topic, partition, offset, record_ms)
                elif isinstance(event, (OutcomeReward, Judgment)) and self._fresh(REWARDS, tp, offset):
                    batch.add_reward(event, topic, partition, offset, record_ms)
            if fold.changed:
                batch.dirty_sessions.add(event.session_id)
        if offset > self._buffered.get(tp, -1):
            self._buffered[tp] = offset
        batch = self.batch  # a flush during an await above may have swapped it
        batch.track(topic, partition, offset, size, self.clock())
        if ack is not None:
            batch.events.append(ack)
        if len(batch) + len(batch.dirty_sessions) >= self.settings.batch_max_rows or batch.approx_bytes >= self.settings.batch_max_bytes:
            await self.flush()

    async def _in_order(self, tp: TP, offset: int) -> bool:
        """Whether `offset` may be processed now: no unread record sits before it."""
        rewind = self._rewinds.get(tp)
        if rewind is not None:
            target, when = rewind
            if offset > target:  # still records from before the seek
                if self.clock() - when >= 0.2:
                    await self._rewind(tp, target)
                return False
            if offset == target:
                del self._rewinds[tp]
        expected = self._next.get(tp)
        if expected is not None and offset > expected:
            first = await self.partition_log.first_offset_at(tp, expected)
            if first is not None and first < offset:
                log.warning("records %d..%d of %s/%d never reached the worker; reading them again", first, offset - 1, *tp)
                self.counters["rewinds"] += 1
                await self._rewind(tp, first)
                return False
        self._next[tp] = max(expected or 0, offset + 1)
        return True

    async def _rewind(self, tp: TP, offset: int) -> None:
        self._rewinds[tp] = (offset, self.clock())
        await self.partition_log.seek(tp, offset)

    async def tick_rewinds(self) -> None:
        """Seek again where records sought back to have not come (a seek can race the fetcher)."""
        for tp, (target, when) in list(self._rewinds.items()):
            if self.clock() - when >= 1.0:
                await self._rewind(tp, target)

    def _stage_dirty_sessions(self, batch: RowBatch) -> None:
        for sid in batch.dirty_sessions:
            state = self.state.get(sid)
            if state is not None:
                self._stage_session(state, batch)

    def _stage_session(self, state: dict[str, Any], batch: RowBatch | None = None) -> None:
        row = session_row(state, now_ms=int(self.clock() * 1000), reward_grace_s=self.settings.reward_grace_s, idle_timeout_s=self.settings.idle_timeout_s)
        (batch if batch is not None else self.batch).set_session(row)
        if row["finalized"]:
            self._pending.pop(row["session_id"], None)
        else:
            self._pending[row["session_id"]] = (row["status"], row["finalized"])

    # -- timers -----------------------------------------------------------------------------

    async def tick_latency(self) -> None:
        """Commit the batch once its oldest record is older than the latency bound."""
        first = self.batch.first_added
        if first is not None and self.clock() - first >= self.settings.batch_max_latency_s:
            await self.flush()

    async def tick_sessions(self) -> None:
        """Finalize sessions whose reward grace passed and abandon idle ones."""
        if self._rescan:
            self._rescan = False
            assigned = {p for _, p in self._assigned}
            for sid, st in list(self.state.items()):
                if st and st.get("p") in assigned and sid not in self._pending:
                    self._pending[sid] = ("?", False)
        now_ms = int(self.clock() * 1000)
        for sid, last in list(self._pending.items()):
            st = self.state.get(sid)
            if st is None:
                self._pending.pop(sid, None)
                continue
            current = session_status(st, now_ms=now_ms, reward_grace_s=self.settings.reward_grace_s, idle_timeout_s=self.settings.idle_timeout_s)
            if current != last:
                self._stage_session(st)
                self.batch.touch(self.clock())

    # -- commits ----------------------------------------------------------------------------

    async def flush(self, *, wait: bool = False) -> None:
        """Hand the current batch to the commit thread (one commit in flight at a time)."""
        if self._in_flight is not None:
            await asyncio.shield(self._in_flight)
        if self._failure is not None:
            raise self._failure
        batch, self.batch = self.batch, RowBatch()
        if batch.first_added is None and not batch.events:
            return
        self._stage_dirty_sessions(batch)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._commit, batch)
        self._in_flight = asyncio.ensure_future(self._finish(batch, future))
        if wait:
            await asyncio.shield(self._in_flight)
            if self._failure is not None:
                raise self._failure

    async def _finish(self, batch: RowBatch, future: "asyncio.Future[dict[str, int]]") -> None:
        try:
            written = await future
        except BaseException as exc:  # the worker must stop: un-acked events replay on restart
            log.critical("committing a batch to the lake failed: %s", exc)
            self._failure = exc
            return
        finally:
            self._in_flight = None
        for event in batch.events:
            event.ack()
        for table, n in written.items():
            self.counters[f"rows_{table}"] += n
        self.counters["batches"] += 1

    def _maybe_die(self, at: int | None) -> None:
        if at is not None and self._commits == at:
            log.warning("fault injection: SIGKILL at commit %d", at)
            os.kill(os.getpid(), signal.SIGKILL)

    def _commit(self, batch: RowBatch) -> dict[str, int]:
        """Runs in the commit thread: one Delta commit per table, offsets checked first."""
        offsets = dict(batch.offsets)
        written: dict[str, int] = {}
        self._commits += 1
        self._maybe_die(self.settings.fault_kill_before_commit)
        for table, rows in batch.tables():
            written[table] = self.writer.append(table, rows, offsets=offsets)
        # After the Delta commit, before the events are acked and their Kafka offsets committed.
        self._maybe_die(self.settings.fault_kill_after_commit)
        for table in (MESSAGES, TURNS, REWARDS, DEAD_LETTERS):
            for tp, offset in offsets.items():
                key = (table, tp)
                self._committed[key] = max(self._committed.get(key, -1), offset)
        if batch.sessions:
            written[SESSIONS] = self.writer.upsert_sessions(batch.sessions_table())
        return written
