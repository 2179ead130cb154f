"""Faust's aiokafka transport with a lighter per-record hand-off to the streams.

Faust's consumer hands each fetched record to its streams with
`wait_first(callback(message), suspend_flow.wait())`: two tasks and an `asyncio.wait` per
record, so a rebalance can interrupt a delivery blocked on a full stream buffer. On this
project's 2-core machines that loop alone capped a no-op agent at ~2,300 records/s
(bench/README.md). This consumer awaits the delivery directly while the flow runs and keeps
Faust's interruptible form while a rebalance suspends it; offsets, gaps and commits are
handled exactly as in Faust's own loop. Brokers are addressed as `kafka://` as before; the
worker's App picks this transport through the `rollout-lake` URL scheme.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust.transport import drivers
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["SCHEME", "Consumer", "Transport", "register"]

SCHEME = "rollout-lake"


class Consumer(faust_aiokafka.Consumer):
    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised by the worker tests
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
                            if suspended():
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            else:
                                await callback(message)
                            set_read_offset(tp, offset)
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
