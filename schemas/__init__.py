"""Wire format v1 of the rollout lake: event models, parsing and JSON Schema."""

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
from schemas.exceptions import EventTooLargeError, EventValidationError, RolloutLakeError
from schemas.jsonschema import json_schemas, write_json_schemas

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
