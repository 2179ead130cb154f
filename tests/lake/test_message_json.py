"""Messages stored pre-rendered by the worker are the bytes the snapshot's SQL renders, and
lakes written before the `message_json` column existed still snapshot the same."""

from __future__ import annotations

import json

from lake import connect
from lake.cli import main
from lake.formats import message_json_sql

from .conftest import session_events

TRICKY = [
    "plain", "", 'quote " backslash \\ slash / </script>', "".join(chr(i) for i in range(32)) + "\x7f\x80\x9f",
    "é中😀\u2028\u2029\ufeff", "literal \\u001b and \\\\u001b", "tab\tnew\nline\r\u000b",
]


def _events():
    events = session_events("m1", turns=1)
    events[1]["messages"] = [
        {"role": "system", "content": TRICKY[0]},
        *({"role": "user", "content": text} for text in TRICKY),
        {"role": "user", "content": [{"type": "text", "text": "parts \u000b"}, {"n": 1.5e-7, "big": 10**19}]},
        {"role": "assistant", "content": None, "name": "bot \u001f", "tool_calls": [
            {"id": f"c{i}\u0001", "type": "function", "function": {"name": "act", "arguments": text}}
            for i, text in enumerate(TRICKY)]},
        {"role": "tool", "tool_call_id": "c0\u0001", "content": "ok\u001a"},
        {"role": "assistant", "content": "done"},
    ]
    return events


def test_stored_json_is_what_sql_renders(lake_factory):
    uri = lake_factory(_events())
    with connect(uri) as lake:
        rows = lake.query(f"""
            SELECT content_is_parts, message_json, {message_json_sql('m')} AS rendered
            FROM raw_messages m ORDER BY turn, idx_in_turn
        """).fetchall()
    assert len(rows) == len(TRICKY) + 5
    for is_parts, stored, rendered in rows:
        if is_parts:
            assert stored is None  # rendered by the snapshot's SQL
        else:
            assert stored == rendered
            json.loads(stored)


def test_lake_without_the_column_snapshots_the_same_bytes(lake_factory, tmp_path):
    uri = lake_factory(_events())
    assert main(["snapshot", "--lake", uri, "--out", str(tmp_path / "new"), "--no-progress"]) == 0
    # The same lake as an older worker wrote it: no message_json column.
    from deltalake import DeltaTable, write_deltalake

    table = f"{uri}/messages"
    data = DeltaTable(table).to_pyarrow_table()
    write_deltalake(table, data.drop_columns(["message_json"]), mode="overwrite", schema_mode="overwrite")
    with connect(uri) as lake:
        assert "message_json" not in [d[0] for d in lake.query("SELECT * FROM raw_messages LIMIT 0").description]
    assert main(["snapshot", "--lake", uri, "--out", str(tmp_path / "old"), "--no-progress"]) == 0
    for name in ("train.jsonl", "val.jsonl"):
        assert (tmp_path / "old" / name).read_bytes() == (tmp_path / "new" / name).read_bytes()
