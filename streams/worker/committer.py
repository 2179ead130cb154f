"""The committer: one background thread that writes each batch to Delta, then acks its records.

A batch is written as one append per table (each carrying the batch's Kafka offsets as Delta
app transactions), then the sessions MERGE carrying the same offsets, which marks the batch
whole. Only then are its records acknowledged, so Kafka's committed offset never passes the lake.
At most one commit is in flight; the event loop fills the next batch meanwhile. A commit that
fails stops the worker (`on_failure`): its records stay unacknowledged, and a restarted worker
reads them again from the lake's offsets, so nothing is lost or written twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lake.tables import SESSIONS
from lake.writer import LakeWriter
from streams.worker.hooks import CommitHooks, NoHooks
from streams.worker.rows import RowBatch

__all__ = ["Committer"]

log = logging.getLogger(__name__)


class Committer:
    def __init__(
        self,
        writer: LakeWriter,
        *,
        counters: Counter[str],
        hooks: CommitHooks | None = None,
        on_committed: Callable[[RowBatch, dict[str, int]], Any] | None = None,
        ack: Callable[[Any], Any] | None = None,
        on_failure: Callable[[BaseException], Awaitable[None]] | None = None,
    ) -> None:
        self.writer = writer
        self.counters = counters
        self.hooks = hooks or NoHooks()
        self.on_committed = on_committed
        self.ack = ack or (lambda event: event.ack())  # a Faust event, or what the worker hands in
        self.on_failure = on_failure
        self._stopping: asyncio.Task[None] | None = None  # holds the stop task so it is not collected mid-run
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-commit")
        self._appenders = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lake-append")
        self.failure: BaseException | None = None
        self.commits = 0
        self.last_latency_s = 0.0
        self.latency_sum_s = 0.0
        self._in_flight: asyncio.Future[None] | None = None

    async def run(self, fn: Callable[[], Any]) -> Any:
        """Run blocking lake work in the commit thread (serialised with commits)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def start(self) -> None:
        await self.run(self.writer.ensure_tables)

    async def wait(self) -> None:
        if self._in_flight is not None:
            await asyncio.shield(self._in_flight)
        if self.failure is not None:
            raise self.failure

    async def submit(self, batch: RowBatch, *, wait: bool = False) -> None:
        """Hand a batch to the commit thread once the previous one is in."""
        await self.wait()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, self._commit, batch)
        self._in_flight = asyncio.ensure_future(self._finish(batch, future))
        if wait:
            await self.wait()

    async def _finish(self, batch: RowBatch, future: "asyncio.Future[dict[str, int]]") -> None:
        try:
            written = await future
        except BaseException as exc:  # the worker must stop: un-acked records replay on restart
            log.critical("committing a batch to the lake failed: %r", exc)
            self.failure = exc
            if self.on_failure is not None and isinstance(exc, Exception):
                # Its own task: stopping the worker waits for the commit in flight, which is this one.
                self._stopping = asyncio.ensure_future(self.on_failure(exc))
            return
        finally:
            self._in_flight = None
        ack = self.ack
        for event in batch.events:
            ack(event)
        for table, n in written.items():
            self.counters[f"rows_{table}"] += n
        self.counters["batches"] += 1
        if self.on_committed is not None:
            await self.on_committed(batch, written)

    def _commit(self, batch: RowBatch) -> dict[str, int]:
        """Runs in the commit thread: appends, then the sessions MERGE, offsets checked first."""
        started = time.perf_counter()
        offsets = dict(batch.offsets)
        written: dict[str, int] = {}
        self.commits += 1
        self.hooks.before_commit(self.commits)
        # The appends are independent Delta tables, each with its own app transactions: delta-rs
        # writes them in parallel (it releases the GIL); the MERGE that marks the batch whole waits.
        appends = {table: self._appenders.submit(self.writer.append, table, rows, offsets=offsets)
                   for table, rows in batch.tables()}
        for table, future in appends.items():
            written[table] = future.result()
        self.hooks.after_appends(self.commits)
        written[SESSIONS] = self.writer.upsert_sessions(batch.sessions_table(), offsets=offsets)
        self.hooks.after_commit(self.commits)
        self.last_latency_s = time.perf_counter() - started
        self.latency_sum_s += self.last_latency_s
        return written

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)
        self._appenders.shutdown(wait=True)
