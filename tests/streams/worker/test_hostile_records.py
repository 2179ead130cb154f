"""No record can stop ingestion: each hostile kind, alone between good sessions, is one dead letter.

Driven through the worker's own record path (streams.worker.Ingestor) on a real Delta lake; the
same records against a real worker process are in tests/faults/test_hostile_worker.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from streams.devtools.synthetic import expected_counts, hostile_records, make_sessions
from streams.worker import Ingestor, Record
from streams.worker.settings import WorkerSettings
from tests.conftest import lake_counts, read

HOSTILE = {h.kind: h for h in hostile_records()}


def _ingest(lake: str, records: list[Record], sent: list) -> Ingestor:
    async def send(key, value, headers):
        sent.append((key, value, headers))

    async def run() -> Ingestor:
        ingestor = Ingestor(WorkerSettings(lake_uri=lake, rollout_topic="t"), send_dead_letter=send)
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        for i in range(0, len(records), 7):  # several record batches, like the Faust agent's
            await ingestor.handle_batch(records[i : i + 7])
        await ingestor.stop()
        return ingestor

    return asyncio.run(run())


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_record_between_good_sessions_becomes_one_dead_letter(tmp_path, kind):
    hostile = HOSTILE[kind]
    sessions = make_sessions(4, 3, seed=5)
    events = [e for s in sessions for e in s.events]
    raw = [(e["session_id"].encode(), json.dumps(e).encode(), 1.0e9) for e in events]
    when = hostile.timestamp_ms / 1000 if hostile.timestamp_ms is not None else 1.0e9
    at = len(raw) // 2
    raw.insert(at, (hostile.key, hostile.value, when))
    records = [Record(k, v, "t", 0, offset, ts) for offset, (k, v, ts) in enumerate(raw)]
    lake, sent = str(tmp_path / "lake"), []

    ingestor = _ingest(lake, records, sent)

    counts = lake_counts(lake)
    want = expected_counts(sessions)
    assert {t: counts[t] for t in want} == want
    dead = read(lake, "dead_letters").to_pylist()
    assert len(dead) == 1 and ingestor.counters["dead_letters"] == 1
    assert dead[0]["raw"] == hostile.value and dead[0]["key"] == hostile.key
    assert dead[0]["kafka_offset"] == at and dead[0]["error"]
    assert len(sent) == 1
    key, value, headers = sent[0]
    assert headers["error"] == dead[0]["error"][:1000] and headers["source"] == f"t/0/{at}"
    if len(hostile.value) > 900_000:  # the topic copy is cut to fit a 1 MiB broker limit; the table has it all
        assert len(value) == 900_000 and "truncated" in headers
    else:
        assert value == hostile.value and "truncated" not in headers


def test_every_hostile_record_at_once_keeps_the_good_sessions_exact(tmp_path):
    sessions = make_sessions(6, 3, seed=6)
    raw = [(e["session_id"].encode(), json.dumps(e).encode(), 1.0e9) for s in sessions for e in s.events]
    for i, h in enumerate(hostile_records()):
        raw.insert(3 * i + 1, (h.key, h.value, h.timestamp_ms / 1000 if h.timestamp_ms else 1.0e9))
    lake, sent = str(tmp_path / "lake"), []
    _ingest(lake, [Record(k, v, "t", 0, o, ts) for o, (k, v, ts) in enumerate(raw)], sent)
    counts = lake_counts(lake)
    want = expected_counts(sessions)
    assert {t: counts[t] for t in want} == want
    dead = read(lake, "dead_letters").to_pylist()
    assert sorted(d["raw"] for d in dead) == sorted(h.value for h in hostile_records())
    assert len(sent) == len(dead)


def test_an_error_only_arrow_sees_isolates_the_record_not_the_batch(tmp_path, monkeypatch):
    """Defence behind edge validation: a row Arrow refuses dead-letters its record; neighbours land."""
    from streams.worker import rows as batch_module

    sessions = make_sessions(3, 2, seed=8)
    events = [e for s in sessions for e in s.events]
    bad_sid = sessions[1].session_id
    original = batch_module.RowBatch.add_turn

    def add_turn(self, event, topic, partition, offset, record_ms):
        original(self, event, topic, partition, offset, record_ms)
        if event.session_id == bad_sid and event.turn == 1:
            self.columns["turns"]["turn"][-1] = 2**70  # what an unchecked producer int once did

    monkeypatch.setattr(batch_module.RowBatch, "add_turn", add_turn)
    lake, sent = str(tmp_path / "lake"), []
    records = [Record(e["session_id"].encode(), json.dumps(e).encode(), "t", 0, o, 1.0e9) for o, e in enumerate(events)]
    _ingest(lake, records, sent)
    counts = lake_counts(lake)
    want = expected_counts(sessions)
    assert counts["turns"] == want["turns"] - 1 and counts["messages"] == want["messages"] - 4
    dead = read(lake, "dead_letters").to_pylist()
    assert len(dead) == 1 and "cannot be stored" in dead[0]["error"] and bad_sid.encode() == dead[0]["key"]
    assert len(sent) == 1
