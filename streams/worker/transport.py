"""Faust's aiokafka transport with a lighter hand-off from the consumer to the worker.

Faust's consumer hands each fetched record to its streams with
`wait_first(callback(message), suspend_flow.wait())`: two tasks and an `asyncio.wait` per
record, then a decode, an Event and a queue hop per record on the way to the agent. On this
project's 2-core machines that loop alone capped a no-op agent at ~2,300 records/s
(bench/README.md), and the event path cost about a third of the worker's time.

This consumer delivers the records of the topics registered in `Bulk` a whole fetch at a time:
one list of raw messages per fetch, put on a small bounded queue the worker's agent reads. The
records of other topics go Faust's way, awaited directly while the flow runs and in Faust's
interruptible form while a rebalance suspends it. Read offsets, gaps and commits are handled
exactly as in Faust's own loop, and the worker acks each message through Faust's consumer, so
Faust's committed offsets work as before. Brokers are addressed as `kafka://` as before; the
worker's App picks this transport through the `rollout-lake` URL scheme.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from faust.transport import drivers
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["SCHEME", "Bulk", "Consumer", "Transport", "register"]

SCHEME = "rollout-lake"


class Bulk:
    """Fetched records of some topics, a list per fetch, waiting for the worker."""

    def __init__(self, topics: set[str], maxsize: int = 8) -> None:
        self.topics = frozenset(topics)
        self._queue: asyncio.Queue[list[Any]] = asyncio.Queue(maxsize)

    async def put(self, messages: list[Any]) -> None:
        await self._queue.put(messages)

    async def get(self, max_records: int) -> list[Any]:
        """The next fetch's records, with the fetches queued behind it up to `max_records`."""
        messages = await self._queue.get()
        while len(messages) < max_records and not self._queue.empty():
            messages.extend(self._queue.get_nowait())
        return messages

    def drop(self, keep: Callable[[Any], bool]) -> int:
        """Forget queued records `keep` refuses (those of revoked partitions); how many."""
        dropped = 0
        lists = []
        while not self._queue.empty():
            messages = self._queue.get_nowait()
            kept = [m for m in messages if keep(m)]
            dropped += len(messages) - len(kept)
            if kept:
                lists.append(kept)
        for kept in lists:
            self._queue.put_nowait(kept)
        return dropped


class Consumer(faust_aiokafka.Consumer):
    bulk: Bulk | None = None  # set by the worker before the consumer starts

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised by the worker tests
        bulk = self.bulk
        bulk_topics = bulk.topics if bulk is not None else frozenset()
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        suspended = self.suspend_flow.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        yield_every, since_yield = 100, 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                records = cast(Any, getmany(timeout=1.0))
                await self.sleep(0)
                if not self.should_stop:
                    fetched: list[Any] = []
                    async for tp, message in records:
                        since_yield += 1
                        if since_yield > yield_every:
                            await asyncio.sleep(0)
                            since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if message.topic in bulk_topics:
                                fetched.append(message)
                            elif suspended():
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            else:
                                await callback(message)
                            set_read_offset(tp, offset)
                    if fetched:
                        # A rebalance drops a waiting fetch: the worker reads those records again.
                        if suspended():
                            await self.wait_first(bulk.put(fetched), self.suspend_flow.wait())  # type: ignore[union-attr]
                        else:
                            await bulk.put(fetched)  # type: ignore[union-attr]
                unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def register() -> None:
    """Make `rollout-lake://host:port` resolve to this transport in Faust's registry."""
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
