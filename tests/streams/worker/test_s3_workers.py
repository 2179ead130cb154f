"""Past one machine: two workers in one consumer group, an 8-partition topic, the lake on a real
S3-API server (moto, its own process). One worker is SIGKILLed mid-stream and restarted; every
table ends exact, late rewards land on their sessions, and no secret reaches a worker's log."""

from __future__ import annotations

import json
import random

import pytest
from deltalake import DeltaTable

from lake.tables import SESSIONS, table_uri
from streams.devtools.synthetic import make_sessions, poison_records, to_records
from tests.conftest import assert_exact, complete, lake_counts, publish, wait_for

pytestmark = pytest.mark.fault

PARTITIONS = 8


def test_two_workers_on_an_s3_lake_one_killed_and_restarted(broker, topic_factory, s3_lake_factory, s3_server,
                                                            worker_factory):
    sessions = make_sessions(1000, 4, seed=31, obs_chars=60)
    records = to_records(sessions, seed=31, duplicate_rate=0.05, early_reward_rate=0.05)
    poison = poison_records(20, seed=31)
    # Late rewards: the graders of 100 sessions answer only after everything else is in.
    late_ids = {s.session_id.encode() for s in random.Random(31).sample(sessions, 100)}

    def is_late(rec: tuple[bytes, bytes]) -> bool:
        return rec[0] in late_ids and b'"type":"outcome_reward"' in rec[1]

    late = [r for r in records if is_late(r)]
    first = [r for r in records if not is_late(r)] + poison
    random.Random(32).shuffle(first)

    topic, lake = topic_factory(PARTITIONS), s3_lake_factory()
    env = dict(s3_server.env, TOPIC_PARTITIONS=str(PARTITIONS), BATCH_MAX_ROWS="400")
    group = "g-s3-pair"
    a = worker_factory(topic, lake, group=group, **env)
    b = worker_factory(topic, lake, group=group, **env)
    workers = [a, b]
    publish(broker.bootstrap_servers, topic, first[: len(first) // 2])
    total = sum(s.num_turns for s in sessions)
    wait_for(lambda: lake_counts(lake)["turns"] >= 0.25 * total, 240, "both workers ingesting", workers)
    b.kill()
    publish(broker.bootstrap_servers, topic, first[len(first) // 2 :])
    wait_for(lambda: lake_counts(lake)["turns"] >= 0.6 * total, 240, "the survivor ingesting", workers)
    workers.append(worker_factory(topic, lake, group=group, **env))  # b again: rejoins the group
    publish(broker.bootstrap_servers, topic, late)
    wait_for(complete(lake, sessions, len(poison)), 300, "every event in the lake", workers)
    assert_exact(lake, sessions, len(poison))

    rows = {r["session_id"]: r for r in DeltaTable(table_uri(lake, SESSIONS)).to_pyarrow_table().to_pylist()}
    for s in sessions:
        if s.session_id.encode() in late_ids:
            reward = next(e for e in s.events if e["type"] == "outcome_reward")
            assert rows[s.session_id]["total_reward"] == reward["total_reward"], s.session_id
    # Every partition's progress is in the lake, and both processes committed some of it.
    dt = DeltaTable(table_uri(lake, SESSIONS))
    assert all(dt.transaction_version(f"rollout-lake:{topic}:{p}") is not None for p in range(PARTITIONS))
    # How often one worker's commit found the other's first (delta-rs rebased it), for the log.
    history = DeltaTable(table_uri(lake, "turns")).history()
    print("turns commits rebased on the other worker's:",
          sum(1 for h in history if (h.get("operationMetrics") or {}).get("num_retries", 0) > 0), "of", len(history))
    logs = [w.log() for w in workers]
    print("MERGEs run again after a conflict:", sum(text.count("lost a race") for text in logs))
    assert all("Worker]: Ready" in text for text in logs[:2])
    secret = s3_server.env["AWS_SECRET_ACCESS_KEY"]
    assert not any(secret in text for text in logs), "a worker logged the S3 secret"
    assert json.dumps(lake_counts(lake))  # the lake is readable after the workers stopped writing
