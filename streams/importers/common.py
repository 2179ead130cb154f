"""What every importer shares: deterministic ids, timestamps, turn splitting, event construction.

Ids are derived from the source's content and row ids (never its path or the import time), so
importing the same traces again yields the same event_ids and the worker drops them. Bad data in
a row raises `ImportRowError` (a ValueError): its session is skipped with that reason, and the
rest of the import goes on.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas import EventValidationError, format_validation_error
from streams.importers.exceptions import ImportRowError

__all__ = ["ImportedSession", "ROW_ERRORS", "stable_id", "parse_ts", "make_event", "split_turns", "loads_maybe"]

# What bad data in one source row can raise while its session is converted: the session is
# skipped with the message, never the whole import (RecursionError: JSON nested too deep).
ROW_ERRORS = (ValueError, TypeError, KeyError, AttributeError, ArithmeticError, RecursionError)

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
    # surrogatepass: a lone surrogate from a bad source still hashes (valid text is unchanged);
    # the event that carries it is refused later, with a reason.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def parse_ts(value: Any, where: str = "timestamp") -> datetime | None:
    """ISO strings, epoch seconds/ms or datetimes -> aware UTC datetime; naive values are UTC.

    Text that is no time at all gives None (the importer falls back to a neighbour's time);
    a number that is not finite or outside years 1-9999 raises ImportRowError naming `where`.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        ts = _from_epoch(value, value, where)
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return None
            ts = _from_epoch(number, value, where)
    else:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)


def _from_epoch(number: float, original: Any, where: str) -> datetime:
    if not math.isfinite(number):
        raise ImportRowError(f"{where} {original!r} is not a finite time")
    try:
        return datetime.fromtimestamp(number / 1000 if abs(number) > 1e11 else number, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ImportRowError(
            f"{where} {original!r} is out of range: expected epoch seconds or milliseconds within years 1-9999"
        ) from None


def loads_maybe(value: Any) -> Any:
    """JSON-decode text that looks like JSON; anything else comes back unchanged."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
        except RecursionError:
            raise ImportRowError(
                f"JSON text {value[:40]!r}... is nested too deeply to read; keep content and metadata shallow"
            ) from None
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
