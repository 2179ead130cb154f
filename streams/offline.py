"""Write events to the lake through the worker's own code path, without Kafka or Faust.

For benchmarks and fixtures that need a large lake quickly: the same validation, session
assembly, row building and exactly-once writer as the worker, fed from memory. Offsets continue
after what the lake already holds for the given (topic, partition), so repeated calls append.
Session state lives only for one call, so each call should carry whole sessions.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from lake.tables import DEAD_LETTERS, MESSAGES, REWARDS, TURNS
from streams.ingest import Ingestor
from streams.settings import WorkerSettings

__all__ = ["write_events"]


def _encode(event: Any) -> tuple[bytes | None, bytes]:
    if isinstance(event, tuple):
        return event
    if isinstance(event, BaseModel):
        body = event.model_dump_json().encode()
        return event.session_id.encode(), body  # type: ignore[attr-defined]
    if isinstance(event, (bytes, bytearray)):
        return None, bytes(event)
    return str(event.get("session_id", "")).encode() or None, json.dumps(event, separators=(",", ":")).encode()


def write_events(
    lake_uri: str,
    events: Iterable[Any],
    *,
    topic: str = "offline",
    partition: int = 0,
    batch_rows: int = 200_000,
    now: float | None = None,
    **settings: Any,
) -> dict[str, int]:
    """Fold and write events (models, dicts, raw bytes or (key, value) tuples); returns counters."""
    return asyncio.run(_write(lake_uri, events, topic, partition, batch_rows, now, settings))


async def _write(lake_uri, events, topic, partition, batch_rows, now, settings) -> dict[str, int]:
    conf = WorkerSettings(lake_uri=lake_uri, rollout_topic=topic, batch_max_rows=batch_rows, **settings)
    clock = (lambda: now) if now is not None else time.time
    ingestor = Ingestor(conf, {}, clock=clock)
    await ingestor.start()
    tp = (topic, partition)
    await ingestor.on_assigned([tp])
    offset = max(ingestor.writer.committed_offsets(t, [tp])[tp] for t in (MESSAGES, TURNS, REWARDS, DEAD_LETTERS))
    for event in events:
        offset += 1
        key, value = _encode(event)
        await ingestor.handle(key, value, topic, partition, offset, clock())
    await ingestor.stop()
    return dict(ingestor.counters)
