"""LakeWriter on its own: the app-transaction check decides what an append writes."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable

from lake.tables import DEAD_LETTERS, SCHEMAS, SESSIONS, table_uri
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


def test_a_fresh_writer_reads_the_offsets_from_the_lake_and_each_app_id_has_its_own(tmp_path):
    """After a crash the new process's writer knows nothing in memory: the lake's app transactions decide."""
    lake = str(tmp_path / "lake")
    batch = _dead_letters("t", 0, range(0, 4))
    first = LakeWriter(lake)
    first.ensure_tables()
    assert first.append(DEAD_LETTERS, batch, offsets={("t", 0): 3}) == 4
    restarted = LakeWriter(lake)
    assert restarted.committed_offsets(DEAD_LETTERS, [("t", 0), ("t", 1)]) == {("t", 0): 3, ("t", 1): -1}
    assert restarted.append(DEAD_LETTERS, batch, offsets={("t", 0): 3}) == 0
    version = DeltaTable(table_uri(lake, DEAD_LETTERS)).version()
    assert restarted.append(DEAD_LETTERS, batch, offsets={("t", 0): 3}) == 0
    assert DeltaTable(table_uri(lake, DEAD_LETTERS)).version() == version  # a skipped batch commits nothing
    # Another consumer group (another app id) has its own progress on the same table.
    assert LakeWriter(lake, app_id="other-group").append(DEAD_LETTERS, batch, offsets={("t", 0): 3}) == 4
    assert DeltaTable(table_uri(lake, DEAD_LETTERS)).count() == 8


def _session(sid: str, last_offset: int, status: str) -> dict:
    return {"session_id": sid, "status": status, "last_offset": last_offset, "kafka_topic": "t", "kafka_partition": 0}


def test_upsert_sessions_never_goes_back_and_records_offsets_without_rows(tmp_path):
    lake = str(tmp_path / "lake")
    writer = LakeWriter(lake)
    writer.ensure_tables()

    def rows(*sessions: dict) -> pa.Table:
        return pa.Table.from_pylist(list(sessions), schema=SCHEMAS[SESSIONS])

    def state() -> dict:
        table = DeltaTable(table_uri(lake, SESSIONS)).to_pyarrow_table()
        return {r["session_id"]: (r["last_offset"], r["status"]) for r in table.to_pylist()}

    writer.upsert_sessions(rows(_session("a", 5, "open"), _session("b", 6, "open")), offsets={("t", 0): 6})
    writer.upsert_sessions(rows(_session("a", 3, "terminated")), offsets={("t", 0): 6})  # an older state: ignored
    assert state() == {"a": (5, "open"), "b": (6, "open")}
    writer.upsert_sessions(rows(_session("a", 9, "terminated")), offsets={("t", 0): 9})
    assert state() == {"a": (9, "terminated"), "b": (6, "open")}
    # A batch that changed no session still marks its offsets as whole in the lake.
    assert writer.upsert_sessions(rows(), offsets={("t", 0): 12}) == 0
    assert writer.committed_offsets(SESSIONS, [("t", 0)]) == {("t", 0): 12}
    version = DeltaTable(table_uri(lake, SESSIONS)).version()
    assert writer.upsert_sessions(rows(), offsets={("t", 0): 12}) == 0
    assert DeltaTable(table_uri(lake, SESSIONS)).version() == version
    assert state() == {"a": (9, "terminated"), "b": (6, "open")}
