"""The SFT job: fine-tune a model on a rollout-lake snapshot with TRL (`python -m trainer`).

`trainer.toolcalls` is importable without torch: task apps use it to parse model replies.
"""

from trainer.exceptions import (
    ChatTemplateError,
    EmptySnapshotError,
    ModelLoadError,
    OutputDirError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotIntegrityError,
    ToolCallParseError,
    TrainerConfigError,
    TrainerError,
)
from trainer.loader import Snapshot, load_snapshot, verify_snapshot
from trainer.toolcalls import (
    is_valid_tool_call_reply,
    parse_assistant_text,
    parse_tool_calls,
    render_assistant_content,
    render_tool_calls,
    render_tools_prompt,
)

__all__ = [
    "ChatTemplateError",
    "EmptySnapshotError",
    "ModelLoadError",
    "OutputDirError",
    "Snapshot",
    "SnapshotError",
    "SnapshotFormatError",
    "SnapshotIntegrityError",
    "ToolCallParseError",
    "TrainerConfigError",
    "TrainerError",
    "is_valid_tool_call_reply",
    "load_snapshot",
    "parse_assistant_text",
    "parse_tool_calls",
    "render_assistant_content",
    "render_tool_calls",
    "render_tools_prompt",
    "verify_snapshot",
]
