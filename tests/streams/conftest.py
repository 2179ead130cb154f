"""Helpers shared by tests/streams/*: read a topic back whole, and group its events by session."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from schemas import parse_event

__all__ = ["events_by_session", "read_topic"]


def read_topic(bootstrap: str, topic: str, timeout: float = 15.0) -> list[tuple[int, int, bytes | None, bytes]]:
    """Every record now in `topic` as (partition, offset, key, value), read with a plain consumer."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> list[tuple[int, int, bytes | None, bytes]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not parts:
                parts = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            end = await consumer.end_offsets(parts)
            out: list[tuple[int, int, bytes | None, bytes]] = []
            deadline = time.monotonic() + timeout
            while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
                assert time.monotonic() < deadline, f"could not read {topic} to its end within {timeout}s"
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    out.extend((tp.partition, r.offset, r.key, r.value) for r in records)
            return sorted(out)
        finally:
            await consumer.stop()

    return asyncio.run(run())


async def _partitions(consumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer._client.cluster.partitions_for_topic(topic) or set()


def events_by_session(records) -> dict[str, list]:
    """Records parsed with schemas.parse_event, grouped by key, in offset order; checks key == session_id."""
    sessions: dict[str, list] = defaultdict(list)
    partition_of: dict[str, int] = {}
    for partition, _offset, key, value in records:
        event = parse_event(value)
        assert key == event.session_id.encode()
        assert partition_of.setdefault(event.session_id, partition) == partition
        sessions[event.session_id].append(event)
    return dict(sessions)
