"""The worker keeps only open sessions in memory; the lake answers for the rest."""

from __future__ import annotations

import asyncio
import json
import time

from streams.devtools.synthetic import make_sessions
from streams.worker import Ingestor, Record
from streams.worker.sessions import KnownSessions
from streams.worker.settings import WorkerSettings
from tests.conftest import lake_counts, read


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _records(events, first_offset: int, ts: float):
    return [Record(e["session_id"].encode(), json.dumps(e).encode(), "t", 0, first_offset + i, ts) for i, e in enumerate(events)]


def test_finished_sessions_leave_memory_and_late_events_are_resolved_against_the_lake(tmp_path):
    lake = str(tmp_path / "lake")
    clock = Clock(1.0e9)
    sessions = make_sessions(5, 3, seed=3, judgment_every=0)
    events = [e for s in sessions for e in s.events]
    old = sessions[2]
    duplicate_turn = dict(next(e for e in old.events if e["type"] == "turn" and e["turn"] == 1))
    late_reward = {"schema_version": 1, "type": "outcome_reward", "event_id": "late-1", "session_id": old.session_id,
                   "total_reward": 42.0, "objective": "reward", "achievements": ["defeat_zombie"],
                   "ts": "2026-12-01T00:00:00+00:00"}
    late_judgment = {"schema_version": 1, "type": "judgment", "event_id": "late-2", "session_id": old.session_id,
                     "label": "acceptable"}
    settings = WorkerSettings(lake_uri=lake, rollout_topic="t", evict_after_s=60)

    async def run() -> Ingestor:
        ingestor = Ingestor(settings, clock=clock)
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        await ingestor.handle_batch(_records(events, 0, clock.now))
        await ingestor.flush(wait=True)
        assert ingestor.open_sessions == 5  # finalized (end + reward) but not yet past EVICT_AFTER_S
        clock.now += 61  # a week would do the same
        await ingestor.tick_sessions()
        assert ingestor.open_sessions == 0 and ingestor.counters["sessions_evicted"] == 5
        later = _records([duplicate_turn, late_reward, late_judgment], len(events), clock.now)
        await ingestor.handle_batch(later)
        await ingestor.stop()
        return ingestor

    ingestor = asyncio.run(run())
    assert ingestor.counters["sessions_reloaded"] == 1 and ingestor.counters["duplicates"] == 1
    counts = lake_counts(lake)
    assert counts["turns"] == 15 and counts["sessions"] == 5
    assert {r["event_id"] for r in read(lake, "rewards").to_pylist()} >= {"late-1", "late-2"}
    row = next(r for r in read(lake, "sessions").to_pylist() if r["session_id"] == old.session_id)
    assert (row["total_reward"], row["judgment"], row["turns_received"], row["finalized"]) == (42.0, "acceptable", 3, True)
    assert row["env_name"] == "crafter" and row["status"] in ("terminated", "truncated")


def test_a_late_duplicate_does_not_pin_a_finished_session_in_memory(tmp_path):
    lake = str(tmp_path / "lake")
    clock = Clock(1.0e9)
    (done,) = make_sessions(1, 3, seed=6, judgment_every=0)
    settings = WorkerSettings(lake_uri=lake, rollout_topic="t", evict_after_s=60)

    async def run() -> Ingestor:
        ingestor = Ingestor(settings, clock=clock)
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        await ingestor.handle_batch(_records(done.events, 0, clock.now))
        await ingestor.flush(wait=True)
        clock.now += 61
        await ingestor.tick_sessions()
        assert ingestor.open_sessions == 0
        duplicate = next(e for e in done.events if e["type"] == "turn")
        await ingestor.handle_batch(_records([duplicate], len(done.events), clock.now))
        await ingestor.flush(wait=True)
        assert ingestor.open_sessions == 1  # read back to drop the duplicate
        clock.now += 61
        await ingestor.tick_sessions()
        await ingestor.stop()
        return ingestor

    ingestor = asyncio.run(run())
    assert ingestor.open_sessions == 0 and ingestor.counters["sessions_evicted"] == 2
    assert ingestor.counters["sessions_reloaded"] == 1 and ingestor.counters["duplicates"] == 1


def test_a_restarted_worker_rebuilds_only_the_open_sessions_of_its_partitions(tmp_path):
    lake = str(tmp_path / "lake")
    sessions = make_sessions(4, 3, seed=4, judgment_every=0)
    open_one = sessions[0]
    events = [e for s in sessions[1:] for e in s.events]
    events += [e for e in open_one.events if e["type"] in ("session_start", "turn")]  # no end yet
    settings = WorkerSettings(lake_uri=lake, rollout_topic="t", evict_after_s=0)

    async def first() -> None:
        ingestor = Ingestor(settings)
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        await ingestor.handle_batch(_records(events, 0, time.time()))  # recent: not idle yet
        await ingestor.stop()

    async def second() -> Ingestor:
        ingestor = Ingestor(settings)
        await ingestor.start()
        await ingestor.on_assigned([("t", 0), ("t", 1)])
        assert await ingestor.resume_offset(("t", 0)) == len(events)
        await ingestor._load_open
        assert ingestor.open_sessions == 1 and ingestor.sessions.get(open_one.session_id) is not None
        state = ingestor.sessions.get(open_one.session_id)
        assert sorted(state.turn_offsets) == [0, 1, 2] and state.start.env_name == "crafter"
        rest = [e for e in open_one.events if e["type"] in ("session_end", "outcome_reward")]
        await ingestor.handle_batch(_records(rest + [open_one.events[1]], len(events), time.time()))
        await ingestor.stop()
        return ingestor

    asyncio.run(first())
    ingestor = asyncio.run(second())
    assert ingestor.counters["duplicates"] == 1
    row = next(r for r in read(lake, "sessions").to_pylist() if r["session_id"] == open_one.session_id)
    assert row["finalized"] and row["turns_received"] == 3 and row["total_reward"] is not None
    assert lake_counts(lake)["turns"] == 12


def test_known_sessions_never_forget_an_id_and_rarely_claim_one():
    known = KnownSessions(capacity=1_000, error=0.01)
    ids = [f"session-{i}" for i in range(20_000)]  # 20x the first layer: several layers
    known.update(ids[:7_000])
    for sid in ids[7_000:]:
        known.add(sid)
    assert known.contains(ids).all() and ids[123] in known
    strangers = [f"other-{i}" for i in range(50_000)]
    assert known.contains(strangers).mean() < 0.02


def test_new_sessions_skip_the_lake_and_known_ones_are_found(tmp_path):
    """A batch of new sessions reads nothing from the lake; a session the lake holds is still found."""
    lake = str(tmp_path / "lake")
    old, *new = make_sessions(4, 3, seed=5, judgment_every=0)
    settings = WorkerSettings(lake_uri=lake, rollout_topic="t", evict_after_s=0)

    async def first() -> None:
        ingestor = Ingestor(settings)
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        await ingestor.handle_batch(_records(old.events, 0, time.time()))
        await ingestor.stop()

    async def second() -> Ingestor:
        ingestor = Ingestor(settings)
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        await ingestor._load_open
        assert ingestor.known is not None and old.session_id in ingestor.known
        duplicate = next(e for e in old.events if e["type"] == "turn")
        events = [duplicate] + [e for s in new for e in s.events]
        await ingestor.handle_batch(_records(events, len(old.events), time.time()))
        await ingestor.stop()
        return ingestor

    asyncio.run(first())
    ingestor = asyncio.run(second())
    assert ingestor.counters["new_sessions_not_looked_up"] == 3
    assert ingestor.counters["lake_lookups"] == 1 and ingestor.counters["sessions_reloaded"] == 1
    assert ingestor.counters["duplicates"] == 1
    assert lake_counts(lake)["turns"] == 12 and lake_counts(lake)["sessions"] == 4
    assert new[0].session_id in ingestor.known  # committed ids join the filter


def test_a_lake_from_before_the_partition_columns_gets_them_and_keeps_its_rows(tmp_path):
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from lake.tables import SCHEMAS, table_uri
    from lake.writer import LakeWriter

    lake = str(tmp_path / "lake")
    old_schema = pa.schema([f for f in SCHEMAS["sessions"] if f.name not in ("kafka_topic", "kafka_partition")])
    write_deltalake(table_uri(lake, "sessions"), pa.Table.from_pylist([{"session_id": "old", "status": "terminated"}], schema=old_schema))
    LakeWriter(lake).ensure_tables()
    table = DeltaTable(table_uri(lake, "sessions")).to_pyarrow_table()
    assert {"kafka_topic", "kafka_partition"} <= set(table.column_names)
    assert table.to_pylist()[0]["session_id"] == "old" and table.to_pylist()[0]["kafka_partition"] is None
