"""Send imported sessions through a RolloutPublisher in pipelined batches, skipping bad sessions whole."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas import MAX_EVENT_BYTES, EventTooLargeError, encode_event
from streams.importers.common import ImportedSession

__all__ = ["ReplayReport", "replay"]


@dataclass
class ReplayReport:
    sessions: int = 0
    events: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (session_id, reason)


async def replay(
    sessions: Iterable[ImportedSession],
    publisher: Any | None,
    *,
    batch_events: int = 2000,
    progress: Any | None = None,
) -> ReplayReport:
    """Publish every importable session (publisher=None validates only: a dry run).

    A session that fails validation or holds an oversized event is skipped entirely, so the lake
    never gets half a session from an import; the report names it and why.
    """
    report = ReplayReport()
    max_bytes = publisher.max_event_bytes if publisher is not None else MAX_EVENT_BYTES
    batch: list[Any] = []
    for session in sessions:
        if progress is not None:
            progress.update(1)
        if session.error is None:
            try:
                for event in session.events:
                    encode_event(event, max_bytes=max_bytes)
            except EventTooLargeError as exc:
                session.error = str(exc)
        if session.error is not None:
            report.skipped.append((session.session_id, session.error))
            continue
        batch.extend(session.events)
        report.sessions += 1
        report.events += len(session.events)
        if publisher is not None and len(batch) >= batch_events:
            await publisher.publish_many(batch, stamp=False)
            batch = []
    if publisher is not None and batch:
        await publisher.publish_many(batch, stamp=False)
    return report
