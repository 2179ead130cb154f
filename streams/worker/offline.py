"""Write events to the lake through the worker's own code path, without Kafka or Faust.

For benchmarks and fixtures that need a large lake quickly: the same validation, session
assembly, row building and exactly-once writer as the worker, fed from memory. Offsets continue
after what the lake already holds for the given (topic, partition), so repeated calls append.
Session state between calls comes back from the lake, as in a restarted worker.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from streams.worker import Ingestor, Record
from streams.worker.settings import WorkerSettings

__all__ = ["OfflineIngest", "write_events"]


def _encode(event: Any) -> tuple[bytes | None, bytes]:
    if isinstance(event, tuple):
        return event
    if isinstance(event, BaseModel):
        body = event.model_dump_json().encode()
        return event.session_id.encode(), body  # type: ignore[attr-defined]
    if isinstance(event, (bytes, bytearray)):
        return None, bytes(event)
    if isinstance(event, str):
        return None, event.encode()
    return str(event.get("session_id", "")).encode() or None, json.dumps(event, separators=(",", ":")).encode()


class OfflineIngest:
    """A worker without Kafka for one lake: session state lives across `write` calls."""

    def __init__(self, lake_uri: str, *, topic: str = "offline", partition: int = 0, batch_rows: int = 200_000,
                 clock: Any = None, **settings: Any) -> None:
        self.lake_uri = lake_uri
        self.tp = (topic, partition)
        self.clock = clock or time.time
        self.settings = WorkerSettings(lake_uri=lake_uri, rollout_topic=topic, batch_max_rows=batch_rows, **settings)

    def write(self, events: Iterable[Any]) -> dict[str, int]:
        """Fold and write events (models, dicts, raw bytes or (key, value) tuples); returns counters."""
        return asyncio.run(self._write(events))

    async def _write(self, events: Iterable[Any]) -> dict[str, int]:
        ingestor = Ingestor(self.settings, clock=self.clock)
        await ingestor.start()
        topic, partition = self.tp
        await ingestor.on_assigned([self.tp])
        offset = await ingestor.resume_offset(self.tp) - 1
        chunk: list[Record] = []
        for event in events:
            offset += 1
            key, value = _encode(event)
            chunk.append(Record(key, value, topic, partition, offset, self.clock()))
            if len(chunk) >= 5_000:  # like the worker: one lake look-up per record batch
                await ingestor.handle_batch(chunk)
                chunk = []
        if chunk:
            await ingestor.handle_batch(chunk)
        await ingestor.stop()
        return dict(ingestor.counters)


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
    """Fold and write whole sessions in one go; returns counters (see OfflineIngest for more)."""
    clock = (lambda: now) if now is not None else None
    return OfflineIngest(lake_uri, topic=topic, partition=partition, batch_rows=batch_rows, clock=clock, **settings).write(events)
