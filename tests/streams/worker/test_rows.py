"""RowBatch on its own: events in, Arrow tables with the lake's schemas out, one bad row isolated."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from deltalake import DeltaTable

from lake.tables import DEAD_LETTERS, MESSAGES, REWARDS, SCHEMAS, SESSIONS, TURNS, table_uri
from schemas import parse_event
from streams.devtools.synthetic import make_sessions
from streams.worker import Ingestor, Record
from streams.worker.rows import RowBatch
from streams.worker.settings import WorkerSettings

T0 = "2026-11-01T10:00:00+00:00"
RECORD_MS = 1_790_000_000_000  # the broker's timestamp, used when an event has no `ts`


def turn(sid: str, n: int, *, ts: str | None = T0, messages: list | None = None) -> object:
    event = {"schema_version": 1, "type": "turn", "event_id": f"{sid}-t{n}", "session_id": sid, "turn": n,
             "reward": 0.5, "achievements": ["collect_wood"], "valid": True, "done": False, "metadata": {"k": 1},
             "messages": messages or [{"role": "user", "content": f"obs {n}"}, {"role": "assistant", "content": "ok"}]}
    if ts:
        event["ts"] = ts
    return parse_event(json.dumps(event).encode())


def test_turns_rewards_and_dead_letters_become_rows_with_the_lake_schemas():
    batch = RowBatch()
    batch.add_turn(turn("s1", 0, ts=None, messages=[
        {"role": "system", "content": "You play."},
        {"role": "user", "content": [{"type": "text", "text": "see"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c0", "type": "function", "function": {"name": "act", "arguments": "{\"a\":[\"left\"]}"}}]},
        {"role": "tool", "tool_call_id": "c0", "content": "moved"},
    ]), "t", 2, 10, RECORD_MS)
    batch.add_reward(parse_event({"schema_version": 1, "type": "outcome_reward", "event_id": "r1", "session_id": "s1",
                                  "ts": T0, "total_reward": 3.0, "achievements": ["a"], "objective": "reward"}),
                     "t", 2, 11, RECORD_MS)
    batch.add_reward(parse_event({"schema_version": 1, "type": "judgment", "event_id": "j1", "session_id": "s1",
                                  "ts": T0, "label": "acceptable", "reason": "clean"}), "t", 2, 12, RECORD_MS)
    batch.add_dead_letter("bad JSON", b"s1", b"{nope", "t", 2, 13, RECORD_MS)

    assert batch.counts() == {MESSAGES: 4, TURNS: 1, REWARDS: 2, DEAD_LETTERS: 1, SESSIONS: 0}
    assert len(batch) == 8  # the row count BATCH_MAX_ROWS is held against
    tables = dict(batch.tables())
    assert set(tables) == {MESSAGES, TURNS, REWARDS, DEAD_LETTERS}
    assert all(tables[name].schema == SCHEMAS[name] for name in tables)

    (t,) = tables[TURNS].to_pylist()
    when = datetime.fromtimestamp(RECORD_MS / 1000, tz=timezone.utc)
    assert (t["session_id"], t["turn"], t["num_messages"], t["ts"], t["metadata"]) == ("s1", 0, 4, when, '{"k":1}')
    assert (t["kafka_topic"], t["kafka_partition"], t["kafka_offset"]) == ("t", 2, 10)
    messages = tables[MESSAGES].to_pylist()
    assert [m["idx_in_turn"] for m in messages] == [0, 1, 2, 3]
    assert [m["content_is_parts"] for m in messages] == [False, True, False, False]
    assert messages[1]["content"] == '[{"type":"text","text":"see"}]' and messages[1]["message_json"] is None
    assert json.loads(messages[2]["tool_calls"]) == [
        {"id": "c0", "type": "function", "function": {"name": "act", "arguments": '{"a":["left"]}'}}]
    assert json.loads(messages[3]["message_json"]) == {"role": "tool", "content": "moved", "tool_call_id": "c0"}
    assert all(m["kafka_offset"] == 10 for m in messages)
    rewards = tables[REWARDS].to_pylist()
    assert [(r["kind"], r["total_reward"], r["label"], r["kafka_offset"]) for r in rewards] == [
        ("outcome_reward", 3.0, None, 11), ("judgment", None, "acceptable", 12)]
    (d,) = tables[DEAD_LETTERS].to_pylist()
    assert (d["error"], d["key"], d["raw"], d["received_at"]) == ("bad JSON", b"s1", b"{nope", when)


def test_track_keeps_the_highest_offset_per_partition_the_bytes_and_the_first_time():
    batch = RowBatch()
    assert batch.first_added is None and len(batch) == 0 and list(batch.tables()) == []
    batch.track("t", 0, 7, 100, now=50.0)
    batch.track("t", 0, 3, 20, now=51.0)  # an older offset (a re-delivery) does not move progress back
    batch.track("t", 1, 0, 5, now=52.0)
    assert batch.offsets == {("t", 0): 7, ("t", 1): 0}
    assert batch.approx_bytes == 125  # what BATCH_MAX_BYTES is held against
    assert batch.first_added == 50.0  # the latency clock starts at the first record
    batch.touch(60.0)
    assert batch.first_added == 50.0
    empty = RowBatch()
    empty.touch(61.0)  # a timer-made session row starts the clock too
    assert empty.first_added == 61.0


def test_a_row_arrow_refuses_dead_letters_its_whole_record_and_keeps_the_others():
    batch = RowBatch()
    for offset in range(3):
        event = turn("s1", offset)
        raw = f"raw-{offset}".encode()
        batch.remember("t", 0, offset, b"s1", raw, RECORD_MS)
        batch.add_turn(event, "t", 0, offset, RECORD_MS)
    batch.columns[TURNS]["turn"][1] = 2**70  # what an unchecked producer int once did; edge validation stops it

    tables = dict(batch.tables())

    assert [r["kafka_offset"] for r in tables[TURNS].to_pylist()] == [0, 2]
    assert sorted({r["kafka_offset"] for r in tables[MESSAGES].to_pylist()}) == [0, 2]  # its messages went too
    (dead,) = tables[DEAD_LETTERS].to_pylist()
    assert (dead["kafka_offset"], dead["key"], dead["raw"]) == (1, b"s1", b"raw-1")
    assert dead["error"].startswith("row for table turns cannot be stored: ")
    assert [(source, error) for source, _, _, error in batch.isolated] == [(("t", 0, 1), dead["error"])]


def test_a_sessions_row_arrow_refuses_is_skipped_and_the_others_are_kept():
    batch = RowBatch()
    batch.set_session({"session_id": "good", "num_turns": 2})
    batch.set_session({"session_id": "bad", "num_turns": "two"})
    batch.set_session({"session_id": "good", "num_turns": 3})  # the latest state of a session wins
    rows = batch.sessions_table()
    assert rows.schema == SCHEMAS[SESSIONS]
    assert rows.select(["session_id", "num_turns"]).to_pylist() == [{"session_id": "good", "num_turns": 3}]


def _commits(lake: str, name: str) -> list[int]:
    """Rows added by each write to table `name`, oldest first."""
    history = DeltaTable(table_uri(lake, name)).history()
    writes = [h for h in reversed(history) if h["operation"] == "WRITE"]
    return [int(h["operationMetrics"]["num_added_rows"]) for h in writes if int(h["operationMetrics"]["num_added_rows"])]


@pytest.mark.parametrize("limit, expect_many", [({}, False), ({"batch_max_rows": 30}, True),
                                                ({"batch_max_bytes": 2048}, True)])
def test_the_row_and_byte_limits_cut_the_batches(tmp_path, limit, expect_many):
    sessions = make_sessions(6, 4, seed=3, obs_chars=100)
    events = [e for s in sessions for e in s.events]
    records = [Record(e["session_id"].encode(), json.dumps(e).encode(), "t", 0, o, 1.0e9) for o, e in enumerate(events)]
    lake = str(tmp_path / "lake")

    async def run() -> None:
        ingestor = Ingestor(WorkerSettings(lake_uri=lake, rollout_topic="t", batch_max_latency_s=3600, **limit))
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        for i in range(0, len(records), 5):
            await ingestor.handle_batch(records[i : i + 5])
        await ingestor.stop()

    asyncio.run(run())
    commits = _commits(lake, MESSAGES)
    assert sum(commits) == sum(len(e["messages"]) for e in events if e["type"] == "turn")
    if not expect_many:
        assert len(commits) == 1  # no limit hit: one commit, at stop
    else:
        assert len(commits) > 2
        if "batch_max_rows" in limit:
            # Checked after each record batch (5 records here): a commit overshoots by at most one of them.
            assert max(commits) <= limit["batch_max_rows"] + 5 * 4
