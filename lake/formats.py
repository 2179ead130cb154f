"""JSONL line shapes of a snapshot, built batch-wise: DuckDB renders each message, Arrow joins.

A line is `{"messages":[...],"tools":[...],"metadata":{...}}` (format `messages`) or
`{"prompt":[...],"completion":[...],"tools":[...],"metadata":{...}}` (`prompt_completion`).
Messages follow the OpenAI chat format: `content` is always present (a null content, as in a
pure tool call, is written as "" because many chat templates concatenate it), `tool_calls`,
`tool_call_id` and `name` only when set. No Python object is made per
message: rows arrive ordered by example, and Arrow's list joins assemble whole lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["POS_SCALE", "message_json_sql", "LineAssembler", "LineBatch", "concat_bytes"]

# pos = turn * POS_SCALE + idx_in_turn: one sortable integer per message within a session.
POS_SCALE = 1 << 20


def message_json_sql(m: str = "m") -> str:
    """SQL rendering one message row (alias `m`) as a compact OpenAI chat message object."""
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
        f"""|| '}}'"""
    )


@dataclass
class LineBatch:
    lines: pa.Array  # large_string, each ending in "\n"
    is_val: np.ndarray  # bool per line
    messages: int
    roles: dict[str, int]


class LineAssembler:
    """Turns ordered message rows (ex_ord, role, in_completion, j, tail, is_val) into lines.

    Rows of one example may straddle record batches; the unfinished example is carried over.
    `tail` is set on the example's last row: `],"tools":...,"metadata":{...}}\\n`.
    """

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self._pending: pa.Table | None = None

    def feed(self, batch: pa.RecordBatch) -> Iterator[LineBatch]:
        table = pa.Table.from_batches([batch])
        if self._pending is not None and self._pending.num_rows:
            table = pa.concat_tables([self._pending, table])
        if table.num_rows == 0:
            return
        ex = table.column("ex_ord").to_numpy()
        cut = int(np.searchsorted(ex, ex[-1], side="left"))
        self._pending = table.slice(cut)
        if cut:
            yield self._assemble(table.slice(0, cut).combine_chunks())

    def finish(self) -> Iterator[LineBatch]:
        if self._pending is not None and self._pending.num_rows:
            yield self._assemble(self._pending.combine_chunks())
        self._pending = None

    def _assemble(self, table: pa.Table) -> LineBatch:
        ex = table.column("ex_ord").to_numpy()
        n = len(ex)
        starts = np.concatenate(([0], np.flatnonzero(ex[1:] != ex[:-1]) + 1)).astype(np.int64)
        ends = np.append(starts[1:], n).astype(np.int64)
        values = table.column("j").combine_chunks().cast(pa.large_string())
        tails = table.column("tail").combine_chunks().cast(pa.large_string()).take(pa.array(ends - 1))
        is_val = table.column("is_val").to_numpy(zero_copy_only=False)[starts].astype(bool)
        if self.fmt == "prompt_completion":
            in_comp = table.column("in_completion").to_numpy(zero_copy_only=False).astype(bool)
            n_prompt = np.add.reduceat((~in_comp).astype(np.int64), starts)
            split = starts + n_prompt
            offsets = np.empty(2 * len(starts) + 1, dtype=np.int64)
            offsets[0:-1:2] = starts
            offsets[1::2] = split
            offsets[-1] = n
            joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), values), _L(","))
            idx = np.arange(len(starts), dtype=np.int64)
            prompts = joined.take(pa.array(2 * idx))
            completions = joined.take(pa.array(2 * idx + 1))
            lines = pc.binary_join_element_wise(
                _L('{"prompt":['), prompts, _L('],"completion":['), completions, tails, _L("")
            )
        else:
            offsets = np.append(starts, n).astype(np.int64)
            joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), values), _L(","))
            lines = pc.binary_join_element_wise(_L('{"messages":['), joined, tails, _L(""))
        counts = pc.value_counts(table.column("role").combine_chunks())
        roles = {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}
        return LineBatch(lines=lines.cast(pa.large_string()), is_val=is_val, messages=n, roles=roles)


def _L(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def concat_bytes(arr: pa.Array) -> memoryview:
    """All strings of a large_string array back to back, without a copy."""
    if len(arr) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]
