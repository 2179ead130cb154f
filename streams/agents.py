"""Faust topics, the session-state table, the ingest agent and its timers."""

from __future__ import annotations

import logging
import time
from typing import Any

from faust.types import TP

from streams.app import app, settings
from streams.ingest import Ingestor

__all__ = ["rollout_topic", "dead_letter_topic", "session_state", "ingest", "ingestor"]

log = logging.getLogger(__name__)

rollout_topic = app.topic(
    settings.rollout_topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
)
dead_letter_topic = app.topic(
    settings.dlq_topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", partitions=1
)

# Small per-session state (see streams.assembly); whole message lists never go to the changelog.
session_state = app.Table(
    "session-state",
    default=None,
    key_type=str,
    partitions=settings.topic_partitions,
)


async def _send_dead_letter(key: bytes | None, value: bytes | None, headers: dict[str, str]) -> None:
    await dead_letter_topic.send(key=key, value=value, headers={k: v.encode() for k, v in headers.items()})


class _FaustPartitionLog:
    """The topic as the Ingestor needs it: a fresh consumer to look, Faust's own to seek."""

    async def first_offset_at(self, tp: tuple[str, int], offset: int) -> int | None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(*tp)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False, **settings.aiokafka_kwargs()
        )
        await consumer.start()
        try:
            # Read rather than trust the log end: Tansu reports the start of its last batch + 1.
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, offset)
            deadline = time.monotonic() + (30.0 if end > offset else 3.0)
            while time.monotonic() < deadline:
                batches = await consumer.getmany(tp, timeout_ms=500, max_records=1)
                offsets = [r.offset for records in batches.values() for r in records if r.offset >= offset]
                if offsets:
                    return min(offsets)
            if end > offset:
                raise TimeoutError(f"no record of {tp.topic}/{tp.partition} at or after {offset} came in 30 s")
            return None
        finally:
            await consumer.stop()

    async def seek(self, tp: tuple[str, int], offset: int) -> None:
        # In the consumer's own thread (Faust's plain `seek` races its fetcher from this one).
        await app.consumer.seek_wait({TP(*tp): offset})


ingestor = Ingestor(
    settings, session_state, send_dead_letter=_send_dead_letter, partition_log=_FaustPartitionLog(), crash=app.crash
)


@app.task(on_leader=False)
async def _start_ingestor() -> None:
    await ingestor.start()


@app.on_partitions_assigned.connect
async def _on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
    await ingestor.on_assigned([(tp.topic, tp.partition) for tp in assigned])


@app.on_partitions_revoked.connect
async def _on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    await ingestor.on_revoked((tp.topic, tp.partition) for tp in revoked)


@app.agent(rollout_topic)
async def ingest(stream: Any) -> None:
    async for event in stream.noack().events():
        message = event.message
        await ingestor.handle(
            message.key,
            message.value,
            message.topic,
            message.partition,
            message.offset,
            message.timestamp,
            ack=event,
        )


@app.timer(interval=0.1)
async def _latency_flush() -> None:
    await ingestor.tick_latency()
    await ingestor.tick_rewinds()


@app.timer(interval=settings.timer_interval_s)
async def _session_timers() -> None:
    await ingestor.tick_sessions()


@app.timer(interval=30.0)
async def _report() -> None:
    if ingestor.counters:
        log.info("ingest counters: %s", dict(sorted(ingestor.counters.items())))
