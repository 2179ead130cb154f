"""The producer SDK against the real embedded broker: order, keys, bad input, outages, the spool."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest

from schemas import ChatMessage, EventTooLargeError, EventValidationError, SessionStart
from streams import (
    PublisherConfigError,
    PublishError,
    RolloutPublisher,
    SessionClosedError,
    SpoolError,
    SyncRolloutPublisher,
)
from streams.devtools.broker import EmbeddedBroker, free_port
from tests.streams.conftest import events_by_session, read_topic

MESSAGES = [
    {"role": "system", "content": "You are playing Crafter."},
    {"role": "user", "content": "=== CRAFTER GAME STATE === step 0"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c0", "type": "function", "function": {"name": "act", "arguments": {"actions": ["noop"]}}}]},
    {"role": "tool", "tool_call_id": "c0", "content": "ok"},
]


def test_concurrent_sessions_arrive_complete_keyed_and_in_order(broker, topic_factory):
    topic = topic_factory(partitions=4)
    n_sessions, n_turns = 6, 7

    async def play(pub: RolloutPublisher, i: int) -> str:
        async with pub.session(env_name="crafter", policy_name="teacher", model="scripted", task_id=f"seed-{i}",
                               split="train", seed=i, run_id="demo", tools=[{"type": "function", "function": {"name": "act"}}]) as s:
            for t in range(n_turns):
                await s.turn(MESSAGES, reward=float(t % 2), achievements=["collect_wood"] if t == 3 else [],
                             done=t == n_turns - 1, metadata={"step": t})
                await asyncio.sleep(0)  # let the sessions interleave
            if i == 0:
                s.set_status("truncated")
        await pub.outcome_reward(s.session_id, total_reward=3.0, achievements=["collect_wood"], source="env")
        return s.session_id

    async def run() -> list[str]:
        async with RolloutPublisher(broker.bootstrap_servers, topic) as pub:
            assert pub.idempotent is False  # Tansu refuses InitProducerId; the fallback is clean
            return await asyncio.gather(*(play(pub, i) for i in range(n_sessions)))

    sids = asyncio.run(run())
    sessions = events_by_session(read_topic(broker.bootstrap_servers, topic))
    assert sorted(sessions) == sorted(sids)
    event_ids = [e.event_id for evs in sessions.values() for e in evs]
    assert len(event_ids) == len(set(event_ids)) == n_sessions * (n_turns + 3)
    assert all(re.fullmatch(r"[0-9a-f]{32}", eid) for eid in event_ids)
    for i, sid in enumerate(sids):
        evs = sessions[sid]
        assert [e.type for e in evs] == ["session_start"] + ["turn"] * n_turns + ["session_end", "outcome_reward"]
        assert evs[0].seed == i and evs[0].task_id == f"seed-{i}" and evs[0].env_name == "crafter"
        assert [e.turn for e in evs[1:-2]] == list(range(n_turns))
        assert [e.metadata["step"] for e in evs[1:-2]] == list(range(n_turns))
        assert evs[4].achievements == ["collect_wood"] and evs[-3].done is True
        assert evs[1].messages[2].tool_calls[0].function.arguments == '{"actions":["noop"]}'
        assert evs[-2].num_turns == n_turns
        assert evs[-2].status == ("truncated" if i == 0 else "terminated")
        assert evs[-1].total_reward == 3.0
        assert all(e.ts is not None and e.ts.utcoffset() is not None for e in evs)


def test_session_that_raises_ends_with_error_and_reraises(broker, topic_factory):
    topic = topic_factory(partitions=1)

    async def run() -> str:
        async with RolloutPublisher(broker.bootstrap_servers, topic) as pub:
            session = pub.session(env_name="crafter", session_id="crash-1")
            with pytest.raises(ZeroDivisionError):
                async with session as s:
                    await s.turn([{"role": "user", "content": "hi"}])
                    1 / 0
            with pytest.raises(SessionClosedError, match="crash-1"):
                await s.turn([{"role": "user", "content": "late"}])
            return s.session_id

    sid = asyncio.run(run())
    evs = events_by_session(read_topic(broker.bootstrap_servers, topic))[sid]
    assert [(e.type, getattr(e, "status", None)) for e in evs] == [
        ("session_start", None), ("turn", None), ("session_end", "error")]
    assert evs[-1].num_turns == 1


def test_sync_publisher_from_plain_sync_code(broker, topic_factory):
    topic = topic_factory(partitions=2)
    with SyncRolloutPublisher(broker.bootstrap_servers, topic) as pub:
        with pub.session(env_name="crafter", seed=7, session_id="sync-7") as s:
            for t in range(3):
                event = s.turn([{"role": "user", "content": f"obs {t}"}, {"role": "assistant", "content": "move"}],
                               reward=1.0)
                assert event.turn == t
        assert s.num_turns == 3
        pub.outcome_reward("sync-7", 3.0, achievements=["wake_up"])
        pub.judgment("sync-7", "acceptable", source="reviewer", reason="clean play", score=0.9)
        pub.publish(SessionStart(event_id="fixed-1", session_id="sync-8", env_name="crafter"))
        assert pub.publish_many([{"type": "judgment", "session_id": "sync-8", "label": "bad"}]) == 1
    sessions = events_by_session(read_topic(broker.bootstrap_servers, topic))
    assert [e.type for e in sessions["sync-7"]] == [
        "session_start", "turn", "turn", "turn", "session_end", "outcome_reward", "judgment"]
    assert sessions["sync-7"][-1].reason == "clean play"
    assert sessions["sync-8"][0].event_id == "fixed-1" and sessions["sync-8"][0].ts is not None
    assert sessions["sync-8"][1].label == "bad"


BAD_SESSION_ARGS = [
    (dict(session_id=""), "session_id"),
    (dict(seed="7"), "seed"),
    (dict(env_name=3), "env_name"),
    (dict(tools="act"), "tools"),
    (dict(metadata={"tags": {"a", "b"}}), "metadata.tags"),
    (dict(metadata={"obj": object()}), "metadata.obj"),
    (dict(metadata={1: "x"}), "metadata"),
    (dict(metadata={"x": float("nan")}), "metadata.x"),
]

BAD_TURN_ARGS = [
    (dict(messages="hello"), "messages"),
    (dict(messages=[{"role": "robot", "content": "x"}]), "messages.0.role"),
    (dict(messages=[{"role": "user", "content": "x", "rewrad": 1}]), "messages.0.rewrad"),
    (dict(messages=[{"role": "user", "content": [{"type": "image", "data": b"raw"}]}]), "messages.0.content.0.data"),
    (dict(reward="high"), "reward"),
    (dict(reward="1.0"), "reward"),
    (dict(reward=float("nan")), "reward"),
    (dict(achievements="collect_wood"), "achievements"),
    (dict(valid="yes"), "valid"),
    (dict(metadata={"when": time}), "metadata.when"),
]


def test_bad_input_fails_at_the_call_and_sends_nothing(broker, topic_factory):
    topic = topic_factory(partitions=2)

    async def run() -> None:
        async with RolloutPublisher(broker.bootstrap_servers, topic, max_event_bytes=50_000) as pub:
            for kwargs, field in BAD_SESSION_ARGS:
                with pytest.raises(EventValidationError, match=re.escape(f"`{field}")):
                    pub.session(**kwargs)
            for call, field in [
                (pub.outcome_reward("", 1.0), "session_id"),
                (pub.outcome_reward("s1", "lots"), "total_reward"),
                (pub.outcome_reward("s1", 1.0, achievements=[1, 2]), "achievements.0"),
                (pub.outcome_reward("s1", 1.0, metadata={"s": {1}}), "metadata.s"),
                (pub.judgment("s1", ""), "label"),
                (pub.judgment("s1", "ok", score=float("inf")), "score"),
                (pub.publish({"type": "turn", "session_id": "s1"}), "turn"),
                (pub.publish_many([SessionStart(event_id="e", session_id="s1"), {"type": "nope", "session_id": "s"}]), "type"),
            ]:
                with pytest.raises(EventValidationError, match=re.escape(f"`{field}")):
                    await call
            with pytest.raises(EventTooLargeError, match="over the 50000-byte limit"):
                await pub.judgment("s1", "ok", reason="x" * 60_000)
            session = pub.session(session_id="s-bad")
            with pytest.raises(EventValidationError, match="status"):
                session.set_status("done")
            for kwargs, field in BAD_TURN_ARGS:  # not entered yet: validation still comes first
                with pytest.raises(EventValidationError, match=re.escape(f"`{field}")):
                    await session.turn(**kwargs)
            with pytest.raises(EventTooLargeError, match="turn event for session 's-bad'"):
                await session.turn([{"role": "user", "content": "x" * 60_000}])

    asyncio.run(run())
    assert read_topic(broker.bootstrap_servers, topic) == []


def test_bad_turn_inside_a_session_sends_no_turn_and_keeps_numbering(broker, topic_factory):
    topic = topic_factory(partitions=1)
    original = {"role": "assistant", "content": "hi", "refusal": None, "annotations": []}
    snapshot = json.dumps(original)

    class SdkMessage:  # what the OpenAI SDK returns: a pydantic-like object
        def model_dump(self, exclude_none: bool = False):
            return {"role": "assistant", "content": "from sdk", "audio": None} if not exclude_none else {
                "role": "assistant", "content": "from sdk"}

    async def run() -> str:
        async with RolloutPublisher(broker.bootstrap_servers, topic, max_event_bytes=50_000) as pub:
            async with pub.session(session_id="s-mixed") as s:
                for kwargs, _field in BAD_TURN_ARGS:
                    with pytest.raises(EventValidationError):
                        await s.turn(**kwargs)
                with pytest.raises(EventTooLargeError):
                    await s.turn([{"role": "user", "content": "x" * 60_000}])
                await s.turn([ChatMessage(role="user", content="obs"), original, SdkMessage()])
            return s.session_id

    sid = asyncio.run(run())
    assert json.dumps(original) == snapshot  # the caller's dict is untouched
    evs = events_by_session(read_topic(broker.bootstrap_servers, topic))[sid]
    assert [e.type for e in evs] == ["session_start", "turn", "session_end"]
    assert evs[1].turn == 0 and evs[2].num_turns == 1 and evs[2].status == "terminated"
    assert [m.content for m in evs[1].messages] == ["obs", "hi", "from sdk"]


def test_publisher_misuse_is_reported_clearly():
    with pytest.raises(PublisherConfigError, match="acks"):
        RolloutPublisher("127.0.0.1:1", "t", acks=1)
    with pytest.raises(PublisherConfigError, match="delivery_timeout"):
        RolloutPublisher("127.0.0.1:1", "t", delivery_timeout=0)
    with pytest.raises(PublisherConfigError, match="topic"):
        RolloutPublisher("127.0.0.1:1", "")
    pub = RolloutPublisher("127.0.0.1:1", "t")  # no I/O until start()
    with pytest.raises(PublishError, match="not started"):
        asyncio.run(pub.judgment("s", "ok"))
    with pytest.raises(PublishError, match="not started"):
        SyncRolloutPublisher("127.0.0.1:1", "t").judgment("s", "ok")


def test_from_env_reads_the_kafka_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("ROLLOUT_TOPIC", "rollouts-x")
    monkeypatch.setenv("PUBLISH_TIMEOUT_S", "7.5")
    monkeypatch.setenv("ROLLOUT_SPOOL_PATH", str(tmp_path / "spool.jsonl"))
    pub = RolloutPublisher.from_env(max_event_bytes=4096)
    assert (pub.bootstrap_servers, pub.topic, pub.delivery_timeout, pub.max_event_bytes) == (
        "kafka:9092", "rollouts-x", 7.5, 4096)
    assert pub.spool is not None and pub.spool.path == tmp_path / "spool.jsonl"
    assert not (tmp_path / "spool.jsonl").exists()  # nothing touched before start()
    assert SyncRolloutPublisher.from_env().topic == "rollouts-x"


def test_unreachable_broker_raises_publish_error_within_the_deadline():
    dead = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(PublishError, match=re.escape(dead)):
        asyncio.run(RolloutPublisher(dead, "t", delivery_timeout=2).start())
    assert 1.5 < time.monotonic() - t0 < 4.0
    t0 = time.monotonic()
    with pytest.raises(PublishError, match="unreachable for 2s"):
        with SyncRolloutPublisher(dead, "t", delivery_timeout=2):
            pass
    assert time.monotonic() - t0 < 4.0


def test_outage_mid_session_is_spooled_and_replayed_once_the_broker_is_back(tmp_path):
    port = free_port()
    topic = "rollout-events"
    spool = tmp_path / "spool" / "publisher.jsonl"
    first = EmbeddedBroker(port=port, topics={topic: 2}).start()
    try:
        async def outage() -> tuple[str, str]:
            async with RolloutPublisher(first.bootstrap_servers, topic, delivery_timeout=2, spool_path=spool) as pub:
                async with pub.session(env_name="crafter", session_id="before") as s:
                    await s.turn([{"role": "user", "content": "fine"}])
                first.stop()  # the broker goes away mid-run
                t0 = time.monotonic()
                with pytest.raises(PublishError, match="not confirmed") as err:
                    async with pub.session(env_name="crafter", session_id="during") as s:
                        for t in range(3):
                            await s.turn([{"role": "user", "content": f"obs {t}"}], reward=1.0)
                assert time.monotonic() - t0 < 5.0
                assert len(err.value.event_ids) == 5  # start, 3 turns, end
                with pytest.raises(PublishError):
                    await pub.outcome_reward("during", 3.0)
                return s.session_id, str(err.value)

        sid, message = asyncio.run(outage())
        assert str(spool) in message
    finally:
        first.stop()

    lines = [json.loads(line) for line in spool.read_text().splitlines()]
    assert {line["id"] for line in lines if line["op"] == "event"} - {line["id"] for line in lines if line["op"] == "ack"}

    with pytest.raises(SpoolError, match="held by another publisher"):
        async def two_holders() -> None:
            held = RolloutPublisher("127.0.0.1:1", topic, spool_path=spool)
            held.spool.open()
            try:
                await RolloutPublisher("127.0.0.1:1", topic, spool_path=spool).start()
            finally:
                held.spool.close()
        asyncio.run(two_holders())

    with EmbeddedBroker(port=port, topics={topic: 2}) as second:  # an empty broker on the same address
        with SyncRolloutPublisher(second.bootstrap_servers, topic, delivery_timeout=5, spool_path=spool):
            pass  # start() replays the spool
        assert spool.read_text() == ""  # everything confirmed, spool compacted
        sessions = events_by_session(read_topic(second.bootstrap_servers, topic))
    assert "before" not in sessions  # delivered the first time, not replayed
    evs = sessions[sid]
    assert [e.type for e in evs] == ["session_start", "turn", "turn", "turn", "session_end", "outcome_reward"]
    assert [e.turn for e in evs[1:4]] == [0, 1, 2]
    assert evs[4].status == "terminated" and evs[4].num_turns == 3  # the game ended fine; delivery failed


def test_spool_survives_a_torn_line_and_compacts(tmp_path, monkeypatch):
    from streams.publisher.spool import Spool, SpooledRecord

    path = tmp_path / "s.jsonl"
    spool = Spool(path)
    assert spool.open() == []
    recs = [SpooledRecord(f"e{i}", "t", b"k", b'{"x":%d}' % i) for i in range(3)]
    spool.append(recs)
    spool.ack(["e0"])
    spool.close()
    with open(path, "a") as fh:
        fh.write('{"op":"event","id":"e9","topic"')  # a crash mid-write
    again = Spool(path)
    assert again.open() == recs[1:]
    monkeypatch.setattr(Spool, "COMPACT_BYTES", 10)
    again.ack(["e1", "e2"])  # all confirmed and over the size: rewritten empty
    assert path.read_text() == ""
    again.close()


def test_a_broker_without_idempotence_is_one_clear_info_line_not_an_error(broker, topic_factory, caplog, monkeypatch):
    import gc
    import logging

    import streams.publisher.publisher as producer_module

    topic = topic_factory(partitions=1)
    monkeypatch.setattr(producer_module, "_no_idempotence", set())  # as in a fresh process
    # An earlier test's abandoned aiokafka future ("Future exception was never retrieved", logged by
    # asyncio when it is garbage-collected) is not this test's: collect it before listening.
    gc.collect()
    caplog.clear()
    caplog.set_level(logging.DEBUG)

    async def run() -> None:
        async with RolloutPublisher(broker.bootstrap_servers, topic) as pub:
            assert pub.idempotent is False

    asyncio.run(run())

    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    ours = [r.getMessage() for r in caplog.records if r.name == "streams.publisher.publisher" and r.levelno == logging.INFO]
    assert ours == [f"broker at {broker.bootstrap_servers} does not offer idempotent producers (InitProducerId: "
                    f"{ours[0].split('InitProducerId: ')[1].split(')')[0]}); publishing with acks=all and retries "
                    "instead, the worker drops any duplicate by event_id"]
    # aiokafka's own line, if its logger lets DEBUG through at all (an earlier test in the same
    # session may have raised the aiokafka logger's level), is demoted to DEBUG.
    refused = [r for r in caplog.records if r.getMessage().startswith("Unexpected error during InitProducerIdRequest")]
    assert all(r.levelno == logging.DEBUG for r in refused)


_COMPACT_AND_DIE = """
import os, signal, sys
import streams.publisher.spool as spool_module
from streams.publisher.spool import Spool, SpooledRecord

path, point = sys.argv[1], sys.argv[2]
spool = Spool(path)
spool.open()
spool.append([SpooledRecord(f"e{i}", "t", b"k", b'{"i":%d}' % i) for i in range(50)])
spool.ack([f"e{i}" for i in range(0, 50, 3)])

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

real_fsync = os.fsync
if point == "copy_written":  # the copy is written but not yet on disk
    os.fsync = die
elif point == "before_rename":
    os.replace = die
elif point == "after_rename":
    spool_module._fsync_dir = die
spool.compact()
"""


@pytest.mark.parametrize("point", ["copy_written", "before_rename", "after_rename"])
def test_a_publisher_killed_mid_compaction_loses_no_pending_event(tmp_path, point):
    import signal
    import subprocess
    import sys

    from streams.publisher.spool import Spool

    path = tmp_path / "spool.jsonl"
    proc = subprocess.run([sys.executable, "-c", _COMPACT_AND_DIE, str(path), point], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    pending = Spool(path).open()
    assert sorted(r.event_id for r in pending) == sorted(f"e{i}" for i in range(50) if i % 3)
    assert all(r.value == b'{"i":%d}' % int(r.event_id[1:]) for r in pending)
    assert not (tmp_path / "spool.jsonl.compact").exists()  # a dead compaction's copy is cleared
