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

from typing import Any

__all__ = ["POS_SCALE", "message_json_sql", "concat_bytes"]

# pos = turn * POS_SCALE + idx_in_turn: one sortable integer per message within a session.
POS_SCALE = 1 << 20


def message_json_sql(m: str = "m", *, no_loss: str | None = None) -> str:
    """SQL rendering one message row (alias `m`) as a compact OpenAI chat message object.

    `no_loss`: a boolean SQL expression; where true the message gets `"weight":0` (OpenAI
    fine-tuning's convention, which the trainer honours: context, no loss).
    """
    weight = f"""|| CASE WHEN {no_loss} THEN ',"weight":0' ELSE '' END """ if no_loss else ""
    return (
        f"""'{{"role":' || to_json({m}.role)::VARCHAR || ',"content":' || """
        f"""CASE WHEN {m}.content IS NULL THEN '""' """
        f"""WHEN {m}.content_is_parts THEN json({m}.content)::VARCHAR """
        f"""ELSE to_json({m}.content)::VARCHAR END """
        f"""|| CASE WHEN {m}.tool_calls IS NULL THEN '' """
        f"""ELSE ',"tool_calls":' || json({m}.tool_calls)::VARCHAR END """
        f"""|| CASE WHEN {m}.tool_call_id IS NULL THEN '' """
        f"""ELSE ',"tool_call_id":' || to_json({m}.tool_call_id)::VARCHAR END """
        f"""|| CASE WHEN {m}.name IS NULL THEN '' ELSE ',"name":' || to_json({m}.name)::VARCHAR END """
        f"""{weight}|| '}}'"""
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
