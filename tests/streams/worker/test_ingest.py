"""The Ingestor without Faust: the log-reset guard and the topic epoch."""

from __future__ import annotations

import asyncio
import json

import pytest

from streams.devtools.synthetic import make_sessions
from streams.worker import Ingestor, LogResetError
from streams.worker.offline import write_events
from streams.worker.settings import WorkerSettings
from tests.conftest import lake_counts


def test_a_reset_log_is_refused_until_the_topic_epoch_changes(tmp_path):
    lake = str(tmp_path / "lake")
    write_events(lake, [e for s in make_sessions(3, 4, seed=1) for e in s.events], topic="t")
    tp = ("t", 0)

    class ResetLog:  # the topic now ends at 5: a reset log
        async def first_offset_at(self, tp, offset):
            return offset if offset < 5 else None

        async def seek(self, tp, offset):
            raise AssertionError("nothing to seek")

    async def assign(epoch: str) -> None:
        settings = WorkerSettings(lake_uri=lake, rollout_topic="t", topic_epoch=epoch)
        ingestor = Ingestor(settings, partition_log=ResetLog())
        await ingestor.on_assigned([tp])
        event = make_sessions(1, 1, seed=9)[0].events[0]
        await ingestor.handle(event["session_id"].encode(), json.dumps(event).encode(), "t", 0, 0, 1.0e9)
        await ingestor.stop()

    with pytest.raises(LogResetError, match=r"holds offsets up to \d+ of t/0 but the topic has no record there.*TOPIC_EPOCH"):
        asyncio.run(assign(""))
    asyncio.run(assign("2"))  # a new epoch starts from an empty history


def test_a_new_epoch_ingests_offsets_the_old_one_already_used(tmp_path):
    lake = str(tmp_path / "lake")
    first = make_sessions(2, 3, seed=1, run_id="a")
    second = make_sessions(2, 3, seed=2, run_id="b")
    write_events(lake, [e for s in first for e in s.events], topic="t")
    # Feed the second batch at the offsets the first one used, as after a log reset: the old
    # epoch skips them, the new one takes them.

    async def replay(epoch: str) -> None:
        ingestor = Ingestor(WorkerSettings(lake_uri=lake, rollout_topic="t", topic_epoch=epoch))
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        import json

        for offset, event in enumerate(e for s in second for e in s.events):
            await ingestor.handle(event["session_id"].encode(), json.dumps(event).encode(), "t", 0, offset, 1.0e9)
        await ingestor.stop()

    asyncio.run(replay(""))
    assert lake_counts(lake)["turns"] == 6  # skipped: those offsets look already written
    asyncio.run(replay("2"))
    assert lake_counts(lake)["turns"] == 12 and lake_counts(lake)["sessions"] == 4


def test_records_delivered_twice_to_one_worker_make_rows_once(tmp_path):
    import json

    lake = str(tmp_path / "lake")
    events = [e for s in make_sessions(2, 3, seed=6) for e in s.events]
    raw = [(e["session_id"].encode(), json.dumps(e).encode()) for e in events]

    async def run() -> None:
        ingestor = Ingestor(WorkerSettings(lake_uri=lake, rollout_topic="t"))
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        for offset in list(range(len(raw))) + list(range(3, len(raw))):  # a rewind re-delivers 3..
            await ingestor.handle(*raw[offset], "t", 0, offset, 1.0e9)
        await ingestor.stop()

    asyncio.run(run())
    counts = lake_counts(lake)
    assert (counts["turns"], counts["messages"], counts["sessions"]) == (6, 24, 2)


def test_a_hole_in_delivery_is_read_again_before_the_records_after_it(tmp_path):
    """Faust can drop buffered records in a rebalance and deliver the ones after them: the
    worker holds those back, sends the consumer back to the hole, and loses nothing."""
    lake = str(tmp_path / "lake")
    events = [e for s in make_sessions(2, 3, seed=7) for e in s.events]
    raw = [(e["session_id"].encode(), json.dumps(e).encode()) for e in events]
    sought: list[int] = []

    class Log:  # the topic holds every offset; what the consumer delivers is scripted below
        async def first_offset_at(self, tp, offset):
            return offset if offset < len(raw) else None

        async def seek(self, tp, offset):
            sought.append(offset)

    async def run() -> None:
        ingestor = Ingestor(WorkerSettings(lake_uri=lake, rollout_topic="t"), partition_log=Log())
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        delivered = [0, 1, 2, 5, 6] + list(range(3, len(raw)))  # 3 and 4 dropped, then read again
        for offset in delivered:
            await ingestor.handle(*raw[offset], "t", 0, offset, 1.0e9)
        await ingestor.stop()
        assert ingestor.counters["rewinds"] == 1

    asyncio.run(run())
    assert sought == [3]
    counts = lake_counts(lake)
    assert (counts["turns"], counts["messages"], counts["sessions"]) == (6, 24, 2)


def test_retention_past_the_lakes_last_offset_is_not_a_reset(tmp_path):
    """Real Kafka may delete what the lake already holds: the worker reads on from the log start."""
    lake = str(tmp_path / "lake")
    first = [e for s in make_sessions(2, 3, seed=3) for e in s.events]
    write_events(lake, first, topic="t")  # offsets 0..len(first)-1 in the lake
    later = [e for s in make_sessions(2, 3, seed=4, run_id="later") for e in s.events]
    start = len(first) + 20  # retention deleted everything up to here; nothing was lost to the lake

    class RetainedLog:
        async def first_offset_at(self, tp, offset):
            return max(offset, start) if offset < start + len(later) else None

        async def seek(self, tp, offset):
            raise AssertionError(f"no hole to read again, yet asked to seek to {offset}")

    async def run() -> Ingestor:
        ingestor = Ingestor(WorkerSettings(lake_uri=lake, rollout_topic="t"), partition_log=RetainedLog())
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        for i, e in enumerate(later):
            await ingestor.handle(e["session_id"].encode(), json.dumps(e).encode(), "t", 0, start + i, 1.0e9)
        await ingestor.stop()
        return ingestor

    ingestor = asyncio.run(run())
    assert ingestor.counters["rewinds"] == 0
    assert lake_counts(lake)["turns"] == 12 and lake_counts(lake)["sessions"] == 4


def test_records_dropped_at_the_end_of_a_partition_are_read_again_once_it_goes_quiet(tmp_path):
    """A hole shows when a later record arrives; a dropped tail has none, so an idle partition is probed."""
    lake = str(tmp_path / "lake")
    events = [e for s in make_sessions(2, 3, seed=8) for e in s.events]
    raw = [(e["session_id"].encode(), json.dumps(e).encode()) for e in events]
    sought: list[int] = []
    now = [1.0e9]

    class Log:
        async def first_offset_at(self, tp, offset):
            return offset if offset < len(raw) else None

        async def seek(self, tp, offset):
            sought.append(offset)

    async def run() -> Ingestor:
        ingestor = Ingestor(WorkerSettings(lake_uri=lake, rollout_topic="t"), partition_log=Log(), clock=lambda: now[0])
        await ingestor.start()
        await ingestor.on_assigned([("t", 0)])
        for offset in range(len(raw) - 3):  # the last three never come
            await ingestor.handle(*raw[offset], "t", 0, offset, 1.0e9)
        await ingestor.tick_latency()
        assert sought == []
        now[0] += 11
        await ingestor.tick_latency()
        await asyncio.sleep(0.05)  # the probe runs beside the timer
        assert sought == [len(raw) - 3]
        for offset in range(len(raw) - 3, len(raw)):
            await ingestor.handle(*raw[offset], "t", 0, offset, 1.0e9)
        await ingestor.stop()
        return ingestor

    ingestor = asyncio.run(run())
    assert ingestor.counters["rewinds"] == 1
    counts = lake_counts(lake)
    assert (counts["turns"], counts["messages"], counts["sessions"]) == (6, 24, 2)


def test_a_crash_between_the_turns_and_the_messages_appends_loses_no_message(tmp_path):
    """A batch's appends run in parallel, so SIGKILL can land after `turns` committed and before
    `messages` did: the restarted worker reads the batch again and must still write its messages
    (seen in tests/faults/test_commit_kills.py's random kills: 397 turns without their messages)."""
    import pyarrow.compute as pc

    from lake.tables import TURNS
    from lake.writer import LakeWriter
    from tests.conftest import read

    events = [e for s in make_sessions(3, 4, seed=8) for e in s.events]
    raw = [(e["session_id"].encode(), json.dumps(e).encode()) for e in events]
    half = len(raw) // 2

    def ingest(lake: str, offsets) -> None:
        async def run() -> None:
            ingestor = Ingestor(WorkerSettings(lake_uri=lake, rollout_topic="t"))
            await ingestor.start()
            await ingestor.on_assigned([("t", 0)])
            for offset in offsets:
                await ingestor.handle(*raw[offset], "t", 0, offset, 1.0e9)
            await ingestor.stop()

        asyncio.run(run())

    reference, lake = str(tmp_path / "reference"), str(tmp_path / "lake")
    ingest(reference, range(len(raw)))
    ingest(lake, range(half))  # whole batches up to half - 1
    # The crashed batch: its turns rows and their app transaction are in; messages and sessions are not.
    turns = read(reference, TURNS)
    LakeWriter(lake, app_id="rollout-lake").append(
        TURNS, turns.filter(pc.greater_equal(turns["kafka_offset"], half)), offsets={("t", 0): len(raw) - 1})
    assert lake_counts(lake)["turns"] == lake_counts(reference)["turns"]
    ingest(lake, range(half, len(raw)))  # the restarted worker resumes at the last whole batch
    assert lake_counts(lake) == lake_counts(reference)
