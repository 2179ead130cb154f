"""Turn SDK call arguments into validated v1 events, failing early with one-line errors.

Validation here is stricter than the worker's: the SDK caller is a program we can tell about a
mistake right away, so `reward="1.0"` or a set in metadata is refused instead of coerced.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas import (
    SESSION_STATUSES,
    ChatMessage,
    EventValidationError,
    format_validation_error,
    parse_event,
)

__all__ = ["new_event_id", "utcnow", "build_event", "coerce_event", "check_json"]

E = TypeVar("E", bound=BaseModel)

_CHAT_FIELDS = frozenset(ChatMessage.model_fields)
_MAX_DEPTH = 64


def new_event_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_json(value: Any, field: str) -> None:
    """Refuse anything `json.dumps` would refuse (sets, objects, NaN, non-str keys), naming its path."""
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise EventValidationError(f"field `{field}` is nested more than {_MAX_DEPTH} levels deep (a cycle?)")
        if item is None or isinstance(item, (str, bool, int)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise EventValidationError(f"field `{path}` = {item!r}: expected a finite number; JSON has no NaN/inf")
            continue
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise EventValidationError(
                        f"field `{path}` has key {_shown(key)}: JSON object keys must be strings; use str(key)"
                    )
                stack.append((sub, f"{path}.{key}", depth + 1))
            continue
        if isinstance(item, (list, tuple)):
            stack.extend((sub, f"{path}.{i}", depth + 1) for i, sub in enumerate(item))
            continue
        hint = "use a sorted list" if isinstance(item, (set, frozenset)) else "convert it to str, number, list or dict"
        raise EventValidationError(
            f"field `{path}` = {_shown(item)}: {type(item).__name__} is not JSON-serialisable; {hint}"
        )


def _finite(value: Any, field: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise EventValidationError(f"field `{field}` = {value!r}: expected a finite number")


def _achievements(value: Any, field: str = "achievements") -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        raise EventValidationError(
            f"field `{field}` = {_shown(value)}: expected a list of achievement names, got one string; "
            f"pass [{value!r}]"
        )
    if isinstance(value, (set, frozenset)):
        return sorted(value) if all(isinstance(v, str) for v in value) else list(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _message(value: Any, path: str) -> Any:
    """Accept ChatMessage, an OpenAI chat dict, or an OpenAI SDK message object (model_dump)."""
    if isinstance(value, ChatMessage):
        return value
    if not isinstance(value, Mapping) and callable(getattr(value, "model_dump", None)):
        value = value.model_dump(exclude_none=True)
    if not isinstance(value, Mapping):
        return value  # the model validation names it
    # OpenAI SDK dumps carry empty extras (refusal=None, annotations=[], audio=None); they say
    # nothing, so they are dropped rather than refused. Non-empty unknown keys are still errors.
    msg = {k: v for k, v in value.items() if k in _CHAT_FIELDS or v not in (None, [], {}, "")}
    check_json(msg, path)
    return msg


def _messages(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping, ChatMessage)):
        raise EventValidationError(
            f"field `messages` = {_shown(value)}: expected a list of chat messages "
            "like [{'role': 'user', 'content': '...'}]"
        )
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        return value
    return [_message(m, f"messages.{i}") for i, m in enumerate(value)]


def build_event(model: type[E], /, **fields: Any) -> E:
    """Validate SDK arguments strictly into `model`; fills event_id and ts when not given."""
    data = dict(fields)
    if data.get("event_id") is None:
        data["event_id"] = new_event_id()
    if data.get("ts") is None:
        data["ts"] = utcnow()
    if data.get("metadata") is None:
        data["metadata"] = {}
    check_json(data["metadata"], "metadata")
    if "tools" in data:
        if data["tools"] is None:
            data["tools"] = []
        elif isinstance(data["tools"], tuple):
            data["tools"] = list(data["tools"])
        check_json(data["tools"], "tools")
    if "messages" in data:
        data["messages"] = _messages(data["messages"])
    if "achievements" in data:
        data["achievements"] = _achievements(data["achievements"])
    for name in ("reward", "total_reward", "score"):
        if name in data:
            _finite(data[name], name)
    if "status" in data and data["status"] not in SESSION_STATUSES:
        raise EventValidationError(
            f"field `status` = {_shown(data['status'])}: expected one of {', '.join(SESSION_STATUSES)}"
        )
    kind = model.model_fields["type"].default
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise EventValidationError(format_validation_error(exc, {"type": kind})) from exc


def coerce_event(event: Any, *, stamp: bool = True) -> BaseModel:
    """An event model or a raw dict (parsed leniently, as the worker would) with ids/ts filled in."""
    if isinstance(event, Mapping):
        data = dict(event)
        data.setdefault("schema_version", 1)
        if data.get("event_id") is None:
            data["event_id"] = new_event_id()
        check_json(data.get("metadata") or {}, "metadata")
        event = parse_event(data)
    if not isinstance(event, BaseModel) or getattr(event, "type", None) is None:
        raise EventValidationError(
            f"expected a schemas event (SessionStart, Turn, SessionEnd, OutcomeReward, Judgment) or a dict, "
            f"got {type(event).__name__}"
        )
    check_json(event.metadata, "metadata")  # type: ignore[attr-defined]
    if stamp and event.ts is None:  # type: ignore[attr-defined]
        event = event.model_copy(update={"ts": utcnow()})
    return event
