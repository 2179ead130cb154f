"""Wire format v1 of the rollout lake: event models, parsing and JSON Schema."""

from typing import TYPE_CHECKING

from schemas.exceptions import EventTooLargeError, EventValidationError, RolloutLakeError
from schemas.lazy import lazy_getattr

# pydantic models load on first use: `lake` only needs the exceptions, and a small snapshot
# should not pay for building the event models (a quarter of a second).
_LAZY = {
    **dict.fromkeys(
        ("EVENT_TYPES", "MAX_EVENT_BYTES", "SCHEMA_VERSION", "SESSION_STATUSES", "ChatMessage", "Judgment",
         "OutcomeReward", "RolloutEvent", "SessionEnd", "SessionStart", "ToolCall", "ToolFunction", "Turn",
         "encode_event", "format_validation_error", "parse_event"),
        "schemas.events",
    ),
    "json_schemas": "schemas.jsonschema",
    "write_json_schemas": "schemas.jsonschema",
}

if TYPE_CHECKING:
    from schemas.events import (
        EVENT_TYPES,
        MAX_EVENT_BYTES,
        SCHEMA_VERSION,
        SESSION_STATUSES,
        ChatMessage,
        Judgment,
        OutcomeReward,
        RolloutEvent,
        SessionEnd,
        SessionStart,
        ToolCall,
        ToolFunction,
        Turn,
        encode_event,
        format_validation_error,
        parse_event,
    )
    from schemas.jsonschema import json_schemas, write_json_schemas


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "SCHEMA_VERSION",
    "SESSION_STATUSES",
    "ChatMessage",
    "EventTooLargeError",
    "EventValidationError",
    "Judgment",
    "OutcomeReward",
    "RolloutEvent",
    "RolloutLakeError",
    "SessionEnd",
    "SessionStart",
    "ToolCall",
    "ToolFunction",
    "Turn",
    "encode_event",
    "format_validation_error",
    "json_schemas",
    "parse_event",
    "write_json_schemas",
]
