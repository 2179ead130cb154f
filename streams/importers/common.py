"""What every importer shares: deterministic ids, timestamps, turn splitting, event construction.

Ids are derived from the source's content and row ids (never its path or the import time), so
importing the same traces again yields the same event_ids and the worker drops them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas import EventValidationError, format_validation_error

__all__ = ["ImportedSession", "stable_id", "parse_ts", "make_event", "split_turns", "loads_maybe"]

E = TypeVar("E", bound=BaseModel)


@dataclass
class ImportedSession:
    """All events of one source session, in publishing order, or why it could not be imported."""

    session_id: str
    events: list[Any] = field(default_factory=list)
    error: str | None = None


def stable_id(*parts: object) -> str:
    """A 32-hex id from the parts; the same parts always give the same id."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def parse_ts(value: Any) -> datetime | None:
    """ISO strings, epoch seconds/ms or datetimes -> aware UTC datetime; naive values are UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        ts = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=timezone.utc)
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            try:
                return parse_ts(float(value))
            except ValueError:
                return None
    else:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)


def loads_maybe(value: Any) -> Any:
    """JSON-decode text that looks like JSON; anything else comes back unchanged."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def make_event(model: type[E], /, **fields: Any) -> E:
    """Validate imported data the way the worker will (lenient types), with one-line errors."""
    fields.setdefault("metadata", {})
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise EventValidationError(format_validation_error(exc, {"type": model.model_fields["type"].default})) from exc


def split_turns(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One turn per assistant reply: the context before it, the reply, and its tool results.

    Messages after the last reply that are not its tool results join the last turn; a session
    with no assistant message at all is one turn.
    """
    turns: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    replied = False
    for msg in messages:
        role = msg.get("role")
        if replied and role != "tool":
            turns.append(current)
            current, replied = [], False
        current.append(msg)
        if role == "assistant":
            replied = True
    if current:
        if turns and not any(m.get("role") == "assistant" for m in current):
            turns[-1].extend(current)
        else:
            turns.append(current)
    return turns
