"""Send imported sessions through a RolloutPublisher in pipelined batches, skipping bad sessions whole."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas import MAX_EVENT_BYTES, EventValidationError, encode_event, parse_event
from streams.importers.common import ImportedSession

__all__ = ["ReplayReport", "progress_bar", "replay"]


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

    Every event is encoded and parsed back exactly as the worker will parse it, so a session
    that the worker would dead-letter in part (oversized, too deeply nested, text that is not
    valid Unicode) is skipped entirely instead: the lake never gets half a session from an
    import, and the report names it and why.
    """
    report = ReplayReport()
    max_bytes = publisher.max_event_bytes if publisher is not None else MAX_EVENT_BYTES
    batch: list[Any] = []
    for session in sessions:
        if progress is not None:
            progress.update(1)
        if session.error is None:
            session.error = _refusal(session.events, max_bytes)
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


def progress_bar(total: int | None, *, disable: bool = False) -> Any:
    """A tqdm bar for `replay(progress=...)`; the base install has no tqdm and replays without one."""
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return contextlib.nullcontext()
    return tqdm(total=total, unit="session", desc="replay", disable=True if disable else None)


def _refusal(events: list[Any], max_bytes: int) -> str | None:
    """Why the worker would refuse one of these events, or None."""
    for event in events:
        try:
            parse_event(encode_event(event, max_bytes=max_bytes), max_bytes=max_bytes)
        except EventValidationError as exc:
            return str(exc)
        except ValueError as exc:  # pydantic cannot serialise it: too deep, lone surrogates
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "surrogates not allowed" in detail:
                detail = "it holds text that is not valid Unicode: bytes that are not UTF-8, or a lone surrogate"
            elif "depth exceeded" in detail:
                detail = "it is nested too deeply; keep content and metadata shallow"
            return f"{event.type} event cannot be encoded as JSON: {detail}"
        except RecursionError:
            return f"{event.type} event is nested too deeply to encode; keep content and metadata shallow"
    return None
