"""LakeWriter on its own: the app-transaction check decides what an append writes."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable

from lake.tables import DEAD_LETTERS, SCHEMAS, table_uri
from lake.writer import LakeWriter


def _dead_letters(topic: str, partition: int, offsets: range) -> pa.Table:
    n = len(offsets)
    return pa.Table.from_pydict(
        {
            "error": ["bad"] * n, "key": [b"k"] * n, "raw": [b"v"] * n, "received_at": [0] * n,
            "kafka_topic": [topic] * n, "kafka_partition": [partition] * n, "kafka_offset": list(offsets),
        },
        schema=SCHEMAS[DEAD_LETTERS],
    )


def test_append_writes_each_offset_once_per_partition(tmp_path):
    writer = LakeWriter(str(tmp_path / "lake"))
    writer.ensure_tables()
    a, b = ("t", 0), ("t", 1)
    first = pa.concat_tables([_dead_letters("t", 0, range(0, 10)), _dead_letters("t", 1, range(0, 5))])
    assert writer.append(DEAD_LETTERS, first, offsets={a: 9, b: 4}) == 15
    assert writer.append(DEAD_LETTERS, first, offsets={a: 9, b: 4}) == 0  # a replayed batch
    # Partition 0 moved on, partition 1 is replayed from 3: only the new rows of each go in.
    overlap = pa.concat_tables([_dead_letters("t", 0, range(5, 20)), _dead_letters("t", 1, range(3, 8))])
    assert writer.append(DEAD_LETTERS, overlap, offsets={a: 19, b: 7}) == 10 + 3
    # A partition the offsets do not name has no recorded progress: its rows are kept.
    other = _dead_letters("u", 0, range(0, 2))
    assert writer.append(DEAD_LETTERS, other, offsets={a: 19}) == 2
    dt = DeltaTable(table_uri(str(tmp_path / "lake"), DEAD_LETTERS))
    rows = dt.to_pyarrow_table().to_pylist()
    keys = sorted((r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]) for r in rows)
    assert keys == sorted([("t", 0, o) for o in range(20)] + [("t", 1, o) for o in range(8)] + [("u", 0, 0), ("u", 0, 1)])
    assert writer.committed_offsets(DEAD_LETTERS, [a, b]) == {a: 19, b: 7}
