"""Wire format v1: one pydantic model per event type and a parser for raw records."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_serializer,
)

from schemas.exceptions import EventTooLargeError, EventValidationError

__all__ = [
    "SCHEMA_VERSION",
    "MAX_EVENT_BYTES",
    "EVENT_TYPES",
    "SESSION_STATUSES",
    "MAX_TURN",
    "INT64_MIN",
    "INT64_MAX",
    "ToolFunction",
    "ToolCall",
    "ChatMessage",
    "SessionStart",
    "Turn",
    "SessionEnd",
    "OutcomeReward",
    "Judgment",
    "RolloutEvent",
    "parse_event",
    "encode_event",
    "format_validation_error",
]

SCHEMA_VERSION = 1
# Kafka's default message.max.bytes is 1 MiB; stay under it with room for headers.
MAX_EVENT_BYTES = 1_000_000
EVENT_TYPES = ("session_start", "turn", "session_end", "outcome_reward", "judgment")
SESSION_STATUSES = ("terminated", "truncated", "error")
# Integers land in int64 Delta columns; a turn number past this is a producer bug, not a session.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_TURN = 1_000_000

Id = Annotated[str, Field(min_length=1, max_length=256)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
TurnNumber = Annotated[int, Field(ge=0, le=MAX_TURN)]
# A JSON string escape of a UTF-16 surrogate; a lone one cannot be stored as UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")
Metadata = dict[str, Any]


class _Strict(BaseModel):
    # Unknown fields are refused so a typo ("rewrad") is caught at the edge, not lost.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ToolFunction(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=256)]
    arguments: str = Field(description="JSON-encoded arguments, as in the OpenAI chat format")

    @field_validator("arguments", mode="before")
    @classmethod
    def _encode_mapping(cls, value: Any) -> Any:
        # Task apps often hold arguments as a dict; the wire carries the JSON string.
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"), sort_keys=True)
        return value


class ToolCall(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=256)]
    type: Literal["function"] = "function"
    function: ToolFunction


class ChatMessage(_Strict):
    """One OpenAI-format chat message."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @model_serializer(mode="wrap")
    def _drop_unset_optionals(self, handler: Any) -> dict[str, Any]:
        # `content: null` is meaningful (an assistant tool call); the other Nones are noise.
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None or k == "content"}


class _Event(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Id
    session_id: Id
    ts: AwareDatetime | None = None
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("ts")
    @classmethod
    def _ts_in_utc_range(cls, value: datetime | None) -> datetime | None:
        # "0001-01-01T00:00:00+14:00" is valid ISO 8601 but falls before year 1 in UTC.
        if value is not None and value.year in (1, 9999):  # only the calendar's edges can overflow
            try:
                value.astimezone(timezone.utc)
            except OverflowError:
                raise ValueError("timestamp is outside years 1-9999 once converted to UTC") from None
        return value


class SessionStart(_Event):
    type: Literal["session_start"] = "session_start"
    env_name: str | None = None
    policy_name: str | None = None
    model: str | None = None
    task_id: str | None = None
    split: str | None = None
    seed: Int64 | None = None
    run_id: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)


class Turn(_Event):
    type: Literal["turn"] = "turn"
    turn: TurnNumber = Field(description=f"0-based turn number, at most {MAX_TURN}")
    messages: list[ChatMessage] = Field(default_factory=list)
    reward: float | None = None
    achievements: list[str] = Field(default_factory=list)
    valid: bool = True
    done: bool = False


class SessionEnd(_Event):
    type: Literal["session_end"] = "session_end"
    status: Literal["terminated", "truncated", "error"]
    num_turns: Annotated[int, Field(ge=0, le=MAX_TURN + 1)] | None = None


class OutcomeReward(_Event):
    type: Literal["outcome_reward"] = "outcome_reward"
    total_reward: float
    achievements: list[str] = Field(default_factory=list)
    objective: Annotated[str, Field(min_length=1, max_length=128)] = "reward"
    source: str | None = None


class Judgment(_Event):
    type: Literal["judgment"] = "judgment"
    label: Annotated[str, Field(min_length=1, max_length=256)]
    source: str | None = None
    reason: str | None = None
    score: float | None = None


RolloutEvent = Annotated[
    Union[SessionStart, Turn, SessionEnd, OutcomeReward, Judgment],
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(RolloutEvent)


def format_validation_error(exc: ValidationError, raw: Any = None) -> str:
    """One line naming each bad field, the value seen and what was expected."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    parts = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        # Drop the union tag pydantic inserts ("turn.messages.0" -> "messages.0").
        if loc and loc[0] in EVENT_TYPES:
            loc = loc[1:]
        field = ".".join(loc) or "<event>"
        if err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
            field = "type"
            value = raw.get("type") if isinstance(raw, dict) else None
            msg = f"expected one of {', '.join(EVENT_TYPES)}"
        elif err["type"] == "extra_forbidden":
            value = err.get("input")
            msg = "unknown field; put custom data under `metadata`"
        elif err["type"] == "missing":
            value = None
            msg = "required field is missing"
        else:
            value = err.get("input")
            msg = err["msg"]
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        parts.append(f"field `{field}` = {shown}: {msg}")
    prefix = f"invalid {kind} event" if kind in EVENT_TYPES else "invalid event"
    return f"{prefix}: " + "; ".join(parts)


def parse_event(raw: bytes | str | dict[str, Any], *, max_bytes: int = MAX_EVENT_BYTES) -> Any:
    """Parse one raw record (bytes, str or dict) into its event model.

    Raises EventValidationError (a ValueError) with a one-line message on any problem.
    """
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        if len(raw) > max_bytes:
            raise EventTooLargeError(
                f"event is {len(raw)} bytes, over the {max_bytes}-byte limit; "
                "split the turn or move large blobs to object storage and send a reference"
            )
        # Fast path: pydantic-core parses and validates JSON in one pass; errors take the slow
        # path below, which explains them field by field.
        try:
            event = _ADAPTER.validate_json(raw)
        except ValidationError:
            pass
        else:
            if _SURROGATE_ESCAPE.search(raw):
                _refuse_lone_surrogates(event)
            return event
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EventValidationError(f"record is not UTF-8 JSON: {exc}") from exc
        except RecursionError:
            raise EventValidationError(
                "record is nested too deeply to parse; keep metadata and content parts shallow "
                "(a few levels, not hundreds)"
            ) from None
    elif isinstance(raw, str):
        if len(raw.encode()) > max_bytes:
            raise EventTooLargeError(f"event is over the {max_bytes}-byte limit")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EventValidationError(f"record is not JSON: {exc}") from exc
    else:
        data = raw
    if not isinstance(data, dict):
        raise EventValidationError(
            f"record is a JSON {type(data).__name__}, expected an object with `type` and `session_id`"
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise EventValidationError(
            f"field `schema_version` = {version!r}: expected {SCHEMA_VERSION}; "
            "this worker reads wire format v1 only"
        )
    try:
        event = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise EventValidationError(format_validation_error(exc, data)) from exc
    except RecursionError:
        raise EventValidationError("event is nested too deeply; keep metadata and content parts shallow") from None
    _refuse_lone_surrogates(event)
    return event


def _refuse_lone_surrogates(event: BaseModel) -> None:
    """JSON may escape a lone UTF-16 surrogate (\\ud800); UTF-8 storage cannot hold it."""
    try:
        event.model_dump_json()
        return
    except Exception:  # pydantic wraps the UnicodeEncodeError; find the field to name it
        pass
    stack: list[tuple[str, Any]] = [("", event.model_dump())]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise EventValidationError(
                    f"field `{path}` = {value[:40]!r}: holds a lone UTF-16 surrogate, which is not valid "
                    "Unicode text; encode the text as UTF-8 (or escape surrogate pairs in full)"
                ) from None
        elif isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
            for k in value:
                stack.append((f"{path}.<key>" if path else "<key>", k))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{path}.{i}", v) for i, v in enumerate(value))
    raise EventValidationError("event cannot be encoded as UTF-8 JSON")


def encode_event(event: BaseModel, *, max_bytes: int = MAX_EVENT_BYTES) -> bytes:
    """Serialise an event to its wire bytes, refusing one over the size limit."""
    payload = event.model_dump_json().encode()
    if len(payload) > max_bytes:
        raise EventTooLargeError(
            f"{event.type} event for session {event.session_id!r} is {len(payload)} bytes, "  # type: ignore[attr-defined]
            f"over the {max_bytes}-byte limit; shorten message content or store large blobs "
            "elsewhere and send a reference"
        )
    return payload

