"""The broker restarts while a task app keeps publishing through the SDK.

Tansu here keeps its log in memory: a restart loses the topic, the consumer group and every
record on it. Records the SDK had already seen acknowledged by the old broker, and that the
worker had not ingested yet, are gone with it; that is a property of a memory broker (a real
Kafka cluster keeps its log), not something the product can recover. What the product must do,
and what this test proves with exact counts:
(a) the SDK retries through the outage: every event it reports delivered after the restart is
    ingested; (b) everything already in the lake stays exactly once; (c) the worker refuses to
    take the new log's offsets (restarting at 0) for ones already ingested: it stops with
    LogResetError naming TOPIC_EPOCH, and with TOPIC_EPOCH set it ingests the new log.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from schemas.kafka import rollout_topics
from streams import RolloutPublisher
from streams.devtools.broker import EmbeddedBroker, create_topics, free_port
from streams.devtools.synthetic import make_sessions, to_records
from tests.conftest import Worker, lake_counts, publish, wait_for, worker_env
from tests.faults.conftest import exact, expected

pytestmark = pytest.mark.fault


@pytest.fixture
def own_broker(tmp_path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own (the session broker is shared and must not restart)."""
    b = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log").start()
    yield b
    b.stop()


def _event_ids_in(bootstrap: str, topic: str) -> set[str]:
    """The event ids in the topic's log, read from its start until it has been quiet a while."""
    import json

    from aiokafka import AIOKafkaConsumer

    async def read() -> set[str]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        ids: set[str] = set()
        quiet_since = time.monotonic()
        try:
            # Quiet for 3 s once records came (15 s if none came at all).
            while time.monotonic() - quiet_since < (3 if ids else 15):
                got = await consumer.getmany(timeout_ms=500)
                if got:
                    ids.update(json.loads(r.value)["event_id"] for records in got.values() for r in records)
                    quiet_since = time.monotonic()
        finally:
            await consumer.stop()
        return ids

    return asyncio.run(read())


def _counts_of(events: list[dict]) -> dict[str, int]:
    """Rows the acknowledged events make: one session row per session seen, one per turn, ..."""
    turns = {(e["session_id"], e["turn"]): len(e["messages"]) for e in events if e["type"] == "turn"}
    return {
        "sessions": len({e["session_id"] for e in events}),
        "turns": len(turns),
        "messages": sum(turns.values()),
        "rewards": len({e["event_id"] for e in events if e["type"] in ("outcome_reward", "judgment")}),
        "dead_letters": 0,
    }


def test_broker_restart_while_publishing(own_broker: EmbeddedBroker, lake_uri_factory, tmp_path):
    bootstrap = own_broker.bootstrap_servers
    topic, lake, group = "rollouts", lake_uri_factory(), f"g-restart-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, rollout_topics(topic, 4))
    started: list[Worker] = []

    def worker(**extra: str) -> Worker:
        env = worker_env(bootstrap, topic, lake, group, WEB_PORT=str(free_port()), **extra)
        w = Worker(env, tmp_path / f"worker-{len(started)}.log").start()
        started.append(w)
        return w

    try:
        # Before: a batch of sessions fully in the lake.
        before = make_sessions(150, 20, seed=61, obs_chars=200)
        publish(bootstrap, topic, to_records(before, seed=61, duplicate_rate=0.05))
        first = worker()
        want_before = expected(before)
        wait_for(lambda: lake_counts(lake) == want_before, 120, "the first sessions in the lake", [first])
        first.stop()

        # During: a task app publishes one event at a time through the SDK; the broker restarts.
        during = [e for s in make_sessions(60, 20, seed=62, obs_chars=200) for e in s.events]
        acked: list[tuple[dict, float]] = []
        errors: list[BaseException] = []

        def task_app() -> None:
            async def go() -> None:
                async with RolloutPublisher(bootstrap, topic, delivery_timeout=60) as pub:
                    for e in during:
                        await pub.publish(e)
                        acked.append((e, time.time()))

            try:
                asyncio.run(go())
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        app = threading.Thread(target=task_app, daemon=True)
        app.start()
        wait_for(lambda: len(acked) >= 300 or not app.is_alive(), 60, "the task app publishing")
        own_broker.stop()
        down = time.time()
        time.sleep(1.0)
        own_broker.start()
        create_topics(bootstrap, rollout_topics(topic, 4))
        up = time.time()
        app.join(120)
        assert not app.is_alive() and not errors, f"the SDK did not ride through the restart: {errors!r}"
        assert len(acked) == len(during), "every event was reported delivered"
        # What the new log holds decides, not the clock (an acknowledgement of the new broker can
        # come before `create_topics` returns): events acked by the old broker are gone with its
        # memory, every one acked after the restart is there, and nothing is there twice.
        in_new_log = _event_ids_in(bootstrap, topic)
        kept = [e for e, _ in acked if e["event_id"] in in_new_log]
        lost = [e for e, _ in acked if e["event_id"] not in in_new_log]
        assert len(in_new_log) == len(kept), "the new log holds only events the task app published"
        assert all(e["event_id"] in in_new_log for e, t in acked if t > up), "an event acked after the restart is missing"
        assert all(t < down + 0.5 for e, t in acked if e["event_id"] not in in_new_log), "a lost event was acked after the outage"
        assert len(lost) >= 300 and len(kept) > 0

        # A worker without a new TOPIC_EPOCH refuses the new log (offsets restarted at 0) and stops.
        second = worker()
        wait_for(lambda: "LogResetError" in second.log() and "TOPIC_EPOCH" in second.log(), 90,
                 "the worker to refuse the reset log", [second])
        wait_for(lambda: second.proc.poll() is not None, 60, "the refusing worker to stop", [second])
        assert lake_counts(lake) == want_before, "nothing was written from the reset log"

        # With TOPIC_EPOCH set it ingests the new log; the old rows stay exactly once.
        third = worker(TOPIC_EPOCH="2")
        after = _counts_of(kept)
        want = {k: want_before[k] + after[k] for k in want_before}
        wait_for(lambda: lake_counts(lake) == want, 120, f"{after} from the new log", [third])
        time.sleep(2)  # nothing more arrives
        exact(lake, want)
    finally:
        for w in started:
            w.kill()
