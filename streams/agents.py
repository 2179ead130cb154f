"""Faust topics, the session-state table, the ingest agent and its timers."""

from __future__ import annotations

import logging
from typing import Any

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


async def _log_end_below(tp: tuple[str, int], offset: int) -> int | None:
    """None if the topic still holds a record at `offset`, else where its log ends.

    Asks a fresh consumer (Faust's own highwaters are not known yet during a rebalance) and, as
    some brokers (Tansu among them) report a log end below the true one, reads the record.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(*tp)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False, **settings.aiokafka_kwargs()
    )
    await consumer.start()
    try:
        end = (await consumer.end_offsets([tp]))[tp]
        if end > offset:
            return None
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batches = await consumer.getmany(tp, timeout_ms=3000, max_records=1)
        return None if any(r.offset >= offset for records in batches.values() for r in records) else end
    finally:
        await consumer.stop()


ingestor = Ingestor(
    settings, session_state, send_dead_letter=_send_dead_letter, log_end_below=_log_end_below, crash=app.crash
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


@app.timer(interval=settings.timer_interval_s)
async def _session_timers() -> None:
    await ingestor.tick_sessions()


@app.timer(interval=30.0)
async def _report() -> None:
    if ingestor.counters:
        log.info("ingest counters: %s", dict(sorted(ingestor.counters.items())))
