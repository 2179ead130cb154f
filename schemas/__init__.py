"""The contracts between stages: wire format v1 (events), snapshot format v1 (manifest.json and
files), the tool-call text convention, Kafka settings; models, parsing and JSON Schema."""

from typing import TYPE_CHECKING

from schemas.exceptions import (
    EventTooLargeError,
    EventValidationError,
    ManifestError,
    ManifestVersionError,
    RolloutLakeError,
    ToolCallParseError,
)
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
    **dict.fromkeys(
        ("FORMAT_VERSION", "MANIFEST_FILE", "TRAIN_FILE", "VAL_FILE", "STATS_FILE", "CARD_FILE", "DATA_FILES",
         "FileEntry", "SnapshotCounts", "SnapshotManifest", "parse_manifest"),
        "schemas.manifest",
    ),
    **dict.fromkeys(
        ("is_valid_tool_call_reply", "parse_assistant_text", "parse_tool_calls", "render_assistant_content",
         "render_tool_call", "render_tool_calls", "render_tools_prompt"),
        "schemas.toolcalls",
    ),
    **dict.fromkeys(("EXIT_STATUS", "exit_code_for", "run_cli"), "schemas.cli"),
    "json_schemas": "schemas.jsonschema",
    "write_json_schemas": "schemas.jsonschema",
}

if TYPE_CHECKING:
    from schemas.cli import EXIT_STATUS, exit_code_for, run_cli
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
    from schemas.manifest import (
        CARD_FILE,
        DATA_FILES,
        FORMAT_VERSION,
        MANIFEST_FILE,
        STATS_FILE,
        TRAIN_FILE,
        VAL_FILE,
        FileEntry,
        SnapshotCounts,
        SnapshotManifest,
        parse_manifest,
    )
    from schemas.toolcalls import (
        is_valid_tool_call_reply,
        parse_assistant_text,
        parse_tool_calls,
        render_assistant_content,
        render_tool_call,
        render_tool_calls,
        render_tools_prompt,
    )


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "CARD_FILE",
    "DATA_FILES",
    "EVENT_TYPES",
    "EXIT_STATUS",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "MAX_EVENT_BYTES",
    "SCHEMA_VERSION",
    "SESSION_STATUSES",
    "STATS_FILE",
    "TRAIN_FILE",
    "VAL_FILE",
    "ChatMessage",
    "EventTooLargeError",
    "EventValidationError",
    "FileEntry",
    "Judgment",
    "ManifestError",
    "ManifestVersionError",
    "OutcomeReward",
    "RolloutEvent",
    "RolloutLakeError",
    "SessionEnd",
    "SessionStart",
    "SnapshotCounts",
    "SnapshotManifest",
    "ToolCall",
    "ToolCallParseError",
    "ToolFunction",
    "Turn",
    "encode_event",
    "exit_code_for",
    "format_validation_error",
    "is_valid_tool_call_reply",
    "json_schemas",
    "parse_assistant_text",
    "parse_event",
    "parse_manifest",
    "parse_tool_calls",
    "render_assistant_content",
    "render_tool_call",
    "render_tool_calls",
    "render_tools_prompt",
    "run_cli",
    "write_json_schemas",
]
