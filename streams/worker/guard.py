"""The partition guard: every offset, log and broker workaround of the worker behind one interface.

The lake's Delta app transactions, not Kafka's committed offsets, decide where a partition
resumes. Records must be folded in offset order: Faust can drop records it had buffered in a
rebalance and still deliver (and later commit) the ones after them, so a record after a hole
is held back and the consumer is sent back to read the hole first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from lake.tables import DEAD_LETTERS, MESSAGES, REWARDS, SESSIONS, TURNS
from lake.writer import LakeWriter
from schemas import RolloutLakeError

__all__ = ["APPENDED", "LogResetError", "PartitionGuard", "PartitionLog", "TP"]

log = logging.getLogger(__name__)

TP = tuple[str, int]  # (topic, partition)
APPENDED = (MESSAGES, TURNS, REWARDS, DEAD_LETTERS)


class LogResetError(RolloutLakeError):
    """The topic's offsets restarted below what the lake already holds."""


class PartitionLog(Protocol):
    """What the guard needs from the topic to hold the consumer to the lake's offsets."""

    async def first_offset_at(self, tp: TP, offset: int) -> int | None:
        """The offset of the first record at or after `offset` (None: the log ends before it)."""

    async def seek(self, tp: TP, offset: int) -> None:
        """Make the consumer deliver `tp` again from `offset`."""


class PartitionGuard:
    """Per assigned partition: the lake's offsets, the next offset to fold, and re-reads."""

    def __init__(
        self,
        writer: LakeWriter,
        *,
        run: Callable[[Callable[[], object]], Awaitable[object]],
        partition_log: PartitionLog | None = None,
        clock: Callable[[], float] = time.time,
        counters: Counter[str] | None = None,
    ) -> None:
        self.writer = writer
        self.counters = counters if counters is not None else Counter()
        self.run = run  # runs blocking lake reads off the event loop
        self.partition_log = partition_log
        self.clock = clock
        self._ready: dict[TP, asyncio.Future[None]] = {}
        self._next: dict[TP, int] = {}  # the offset each partition must deliver next
        self._seeking: dict[TP, tuple[int, float]] = {}  # partition -> (offset sought back to, when)
        self._buffered: dict[TP, int] = {}  # highest offset whose rows sit in a batch
        self._committed: dict[tuple[str, TP], int] = {}  # (table, tp) -> last offset in that table
        self._last_record: dict[TP, float] = {}  # when each partition last delivered a record
        self._probing: set[TP] = set()

    # -- assignment -------------------------------------------------------------------------

    def prepare(self, tps: Iterable[TP]) -> "asyncio.Future[None]":
        """Start loading the lake's offsets of `tps` (idempotent per partition)."""
        fresh = [tp for tp in tps if tp not in self._ready]
        if not fresh:
            return asyncio.gather(*(self._ready[tp] for tp in tps))  # type: ignore[return-value]
        future = asyncio.ensure_future(self._load_and_check(fresh))
        for tp in fresh:
            self._ready[tp] = future
        return asyncio.gather(*(self._ready[tp] for tp in tps))  # type: ignore[return-value]

    async def ready(self, tp: TP) -> None:
        future = self._ready.get(tp) or self.prepare([tp])
        if not future.done():
            await asyncio.shield(future)
        elif future.exception() is not None:
            raise future.exception()  # type: ignore[misc]

    def forget(self, tps: Iterable[TP]) -> None:
        """A revoked partition: a later assignment reads the lake again."""
        for tp in tps:
            self._ready.pop(tp, None)
            self._next.pop(tp, None)
            self._seeking.pop(tp, None)
            self._last_record.pop(tp, None)

    def resume_offset(self, tp: TP) -> int:
        return self._next.get(tp, 0)

    async def _load_and_check(self, tps: list[TP]) -> None:
        def load() -> dict[tuple[str, TP], int]:
            out = {}
            for table in (*APPENDED, SESSIONS):
                for tp, offset in self.writer.committed_offsets(table, tps).items():
                    out[(table, tp)] = offset
            return out

        try:
            loaded = await self.run(load)
        except BaseException as exc:
            raise LogResetError(f"could not read the lake's offsets: {exc!r}; restart the worker") from exc
        for key, offset in loaded.items():
            self._committed[key] = max(self._committed.get(key, -1), offset)
        log.info(
            "assigned %s; lake holds rows up to offsets %s, whole batches up to %s", tps,
            {f"{t}/{p}": max(loaded[(name, (t, p))] for name in APPENDED) for t, p in tps},
            {f"{t}/{p}": loaded[(SESSIONS, (t, p))] for t, p in tps},
        )
        for tp in tps:
            held = max(loaded[(t, tp)] for t in APPENDED)
            merged = loaded[(SESSIONS, tp)]
            # Whole batches end with the sessions MERGE; a crash before it is read again from the log.
            # An empty lake starts at the log's start too: Kafka's committed offset is only a hint.
            self._next[tp] = min(held, merged) + 1 if merged >= 0 else 0
            self._last_record[tp] = self.clock()
            if held >= 0 and self.partition_log is not None:
                first = await self.partition_log.first_offset_at(tp, held)
                if first is None:
                    raise LogResetError(
                        f"the lake holds offsets up to {held} of {tp[0]}/{tp[1]} but the topic has no record there: "
                        "its log was reset (topic recreated or broker data lost). Set TOPIC_EPOCH to a new "
                        "value (e.g. TOPIC_EPOCH=2) so the worker ingests it as a new log"
                    )

    # -- per record -------------------------------------------------------------------------

    def fresh(self, table: str, tp: TP, offset: int) -> bool:
        """Whether the rows of `offset` are in no commit and no batch yet (re-deliveries are)."""
        return offset > max(self._committed.get((table, tp), -1), self._buffered.get(tp, -1))

    def buffered(self, tp: TP, offset: int) -> None:
        if offset > self._buffered.get(tp, -1):
            self._buffered[tp] = offset

    def committed(self, offsets: dict[TP, int]) -> None:
        for tp, offset in offsets.items():
            for table in (*APPENDED, SESSIONS):
                key = (table, tp)
                self._committed[key] = max(self._committed.get(key, -1), offset)

    async def admit(self, tp: TP, offset: int) -> bool:
        """Whether `offset` may be folded now: no unread record sits before it."""
        if self.partition_log is None:
            return True
        seeking = self._seeking.get(tp)
        if seeking is not None:
            target, when = seeking
            if offset > target:  # still records from before the seek
                if self.clock() - when >= 0.2:
                    await self._seek(tp, target)
                return False
            if offset == target:
                del self._seeking[tp]
        expected = self._next.get(tp)
        if expected is not None and offset > expected:
            first = await self.partition_log.first_offset_at(tp, expected)
            if first is not None and first < offset:
                log.warning("records %d..%d of %s/%d never reached the worker; reading them again", first, offset - 1, *tp)
                self.counters["rewinds"] += 1
                await self._seek(tp, first)
                return False
        self._next[tp] = max(expected or 0, offset + 1)
        self._last_record[tp] = self.clock()
        return True

    async def _seek(self, tp: TP, offset: int) -> None:
        self._seeking[tp] = (offset, self.clock())
        try:
            await self.partition_log.seek(tp, offset)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - e.g. revoked meanwhile; `tick` seeks again while it is ours
            self.counters["seek_errors"] += 1
            log.warning("could not seek %s/%d back to %d (%r); trying again", *tp, offset, exc)

    async def tick(self, *, idle_probe_s: float = 10.0) -> None:
        """Seek again where records sought back to have not come (a seek can race the fetcher),
        and look for records a partition that went quiet never delivered.

        A hole is noticed when a later record arrives; records Faust dropped at the very end of
        a partition have no later record, so a partition idle for `idle_probe_s` is checked
        against the log once per idle period.
        """
        now = self.clock()
        for tp, (target, when) in list(self._seeking.items()):
            if now - when >= 1.0:
                await self._seek(tp, target)
        if self.partition_log is None:
            return
        for tp, expected in list(self._next.items()):
            ready = self._ready.get(tp)
            if tp in self._seeking or tp in self._probing or ready is None or not ready.done():
                continue
            if now - self._last_record.get(tp, now) >= idle_probe_s:
                self._probing.add(tp)
                asyncio.ensure_future(self._probe_tail(tp, expected))

    async def _probe_tail(self, tp: TP, expected: int) -> None:
        try:
            first = await self.partition_log.first_offset_at(tp, expected)  # type: ignore[union-attr]
            if first is not None and self._next.get(tp) == expected and tp not in self._seeking:
                log.warning("records from %d of %s/%d never reached the worker; reading them again", first, *tp)
                self.counters["rewinds"] += 1
                await self._seek(tp, first)
        except Exception as exc:  # noqa: BLE001 - the next idle period probes again
            log.warning("could not probe %s/%d for unread records: %r", *tp, exc)
        finally:
            self._last_record[tp] = self.clock()  # one probe per idle period
            self._probing.discard(tp)

    def partition_states(self) -> dict[TP, dict[str, object]]:
        """Per partition: the next offset to fold, a pending seek, the last whole batch (for /health)."""
        committed = self.last_committed()
        now = self.clock()
        return {
            tp: {
                "next": expected,
                "committed": committed.get(tp),
                "seeking": self._seeking[tp][0] if tp in self._seeking else None,
                "idle_s": round(now - self._last_record[tp], 1) if tp in self._last_record else None,
            }
            for tp, expected in sorted(self._next.items())
        }

    def last_committed(self) -> dict[TP, int]:
        """The last offset whose batch is whole in the lake, per partition (for metrics)."""
        out: dict[TP, int] = {}
        for (table, tp), offset in self._committed.items():
            if table == SESSIONS:
                out[tp] = offset
        return out
