"""JSONL line shapes of a snapshot, built batch-wise: DuckDB renders, Arrow buffers are written.

A line is `{"messages":[...],"tools":[...],"metadata":{...}}` (format `messages`) or
`{"prompt":[...],"completion":[...],"tools":[...],"metadata":{...}}` (`prompt_completion`).
Messages follow the OpenAI chat format: `content` is always present (a null content, as in a
pure tool call, is written as "" because many chat templates concatenate it), `tool_calls`,
`tool_call_id` and `name` only when set. No Python object is made per message: DuckDB
renders each message as a piece of its line (separator before it, the line's tail after the
last one) and the ordered pieces are written back to back straight from Arrow buffers.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["POS_SCALE", "concat_bytes", "message_json", "message_json_sql", "render_sql", "with_weight"]

# pos = turn * POS_SCALE + idx_in_turn: one sortable integer per message within a session.
POS_SCALE = 1 << 20


# A control character that json.dumps escapes as \\u00xx (an odd run of backslashes before it).
_LOWER_ESCAPE = re.compile(r"(\\+)u00([0-9a-f]{2})")


def _upper_escapes(text: str) -> str:
    """json.dumps writes \\u001b, DuckDB \\u001B: the stored JSON matches what the SQL renders."""
    if "\\u00" not in text:
        return text
    return _LOWER_ESCAPE.sub(
        lambda m: m.group(0) if len(m.group(1)) % 2 == 0 else f"{m.group(1)}u00{m.group(2).upper()}", text
    )


def _string(value: str) -> str:
    return _upper_escapes(json.dumps(value, ensure_ascii=False))


def message_json(role: str, content: str | None, tool_calls: str | None = None, tool_call_id: str | None = None,
                 name: str | None = None) -> str:
    """The message as a snapshot writes it, rendered once by the worker (the `message_json` column).

    Byte for byte what message_json_sql renders from the other columns (a test holds them
    together), so a snapshot does not depend on which rows were stored pre-rendered.
    `tool_calls`: the stored JSON text (compact, strings only: see schemas.ToolCall). A
    parts-list content is not rendered here (its numbers could print differently); the
    snapshot renders those rows in SQL.
    """
    out = '{"role":' + _string(role) + ',"content":' + ('""' if content is None else _string(content))
    if tool_calls is not None:
        out += ',"tool_calls":' + _upper_escapes(tool_calls)
    if tool_call_id is not None:
        out += ',"tool_call_id":' + _string(tool_call_id)
    if name is not None:
        out += ',"name":' + _string(name)
    return out + "}"


def message_json_sql(m: str = "m", *, no_loss: str | None = None, stored: bool = False) -> str:
    """SQL rendering one message row (alias `m`) as a compact OpenAI chat message object.

    `no_loss`: a boolean SQL expression; where true the message gets `"weight":0` (OpenAI
    fine-tuning's convention, which the trainer honours: context, no loss). `stored`: the
    table has the `message_json` column; rows that hold it are not rendered again.
    """
    rendered = render_sql(m)
    if stored:
        rendered = f"coalesce({m}.message_json, {rendered})"
    return with_weight(rendered, no_loss)


def with_weight(message: str, no_loss: str | None) -> str:
    """SQL: the message JSON `message` with `"weight":0` added where `no_loss` holds."""
    if not no_loss:
        return message
    return (f"CASE WHEN {no_loss} THEN substr({message}, 1, length({message}) - 1) || ',\"weight\":0}}' "
            f"ELSE {message} END")


def render_sql(m: str) -> str:
    """SQL: the message JSON rendered from the row's columns (what message_json stores)."""
    return (
        f"""('{{"role":' || to_json({m}.role)::VARCHAR || ',"content":' || """
        f"""CASE WHEN {m}.content IS NULL THEN '""' """
        f"""WHEN {m}.content_is_parts THEN json({m}.content)::VARCHAR """
        f"""ELSE to_json({m}.content)::VARCHAR END """
        f"""|| CASE WHEN {m}.tool_calls IS NULL THEN '' """
        f"""ELSE ',"tool_calls":' || json({m}.tool_calls)::VARCHAR END """
        f"""|| CASE WHEN {m}.tool_call_id IS NULL THEN '' """
        f"""ELSE ',"tool_call_id":' || to_json({m}.tool_call_id)::VARCHAR END """
        f"""|| CASE WHEN {m}.name IS NULL THEN '' ELSE ',"name":' || to_json({m}.name)::VARCHAR END """
        f"""|| '}}')"""
    )


def concat_bytes(arr: Any) -> bytes | memoryview:
    """All strings of a string/large_string array back to back (no copy for one chunk)."""
    import numpy as np
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        return b"".join(bytes(concat_bytes(c)) for c in arr.chunks) if arr.num_chunks != 1 else concat_bytes(arr.chunk(0))
    if len(arr) == 0:
        return memoryview(b"")
    if pa.types.is_string(arr.type) or pa.types.is_binary(arr.type):
        width = np.int32
    elif pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type):
        width = np.int64
    else:
        arr = arr.cast(pa.large_string())
        width = np.int64
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]
