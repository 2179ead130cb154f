"""The ingestion worker against the real broker and real Delta tables: exact counts, no duplicates."""

from __future__ import annotations

import pyarrow.compute as pc

from streams.devtools.synthetic import make_sessions, poison_records, to_records
from tests.conftest import assert_exact, complete, lake_counts, publish, read, wait_for


def test_pipeline_exact_counts_with_duplicates_shuffle_early_rewards_and_poison(broker, topic_factory, lake_uri_factory, worker_factory):
    sessions = make_sessions(500, 20, seed=1, obs_chars=200)
    records = to_records(sessions, seed=1, duplicate_rate=0.05, early_reward_rate=0.1)
    poison = poison_records(len(records) // 100, seed=1)
    records = records + poison
    import random

    random.Random(2).shuffle(records)
    topic, lake = topic_factory(), lake_uri_factory()
    publish(broker.bootstrap_servers, topic, records)
    worker = worker_factory(topic, lake)
    wait_for(complete(lake, sessions, len(poison)), 180, "every event in the lake", [worker])
    assert_exact(lake, sessions, len(poison))

    # A late reward after finalization shows up on its session; its duplicate adds nothing.
    sid = sessions[0].session_id
    late = {"schema_version": 1, "type": "outcome_reward", "event_id": "late-1", "session_id": sid,
            "ts": "2027-01-01T00:00:00Z", "total_reward": 42.0, "achievements": ["collect_diamond"]}
    import json

    publish(broker.bootstrap_servers, topic, [(sid.encode(), json.dumps(late).encode())] * 2)

    def late_visible() -> bool:
        rows = read(lake, "sessions").filter(pc.equal(read(lake, "sessions")["session_id"], sid)).to_pylist()
        return rows and rows[0]["total_reward"] == 42.0

    wait_for(late_visible, 60, "the late reward on its session", [worker])
    row = read(lake, "sessions").filter(pc.equal(read(lake, "sessions")["session_id"], sid)).to_pylist()[0]
    assert row["achievements"] == ["collect_diamond"] and row["status"] in ("terminated", "truncated")
    assert row["turns_received"] == 20 and row["missing_turns"] == 0
    rewards = read(lake, "rewards")
    assert pc.sum(pc.equal(rewards["event_id"], "late-1")).as_py() == 1

    dead = read(lake, "dead_letters").to_pylist()
    assert len(dead) == len(poison)
    assert {d["raw"] for d in dead} == {v for _, v in poison}
    assert all(d["error"] and d["kafka_topic"] == topic and d["kafka_offset"] >= 0 for d in dead)


def test_timers_finalize_after_grace_and_abandon_idle_sessions(broker, topic_factory, lake_uri_factory, worker_factory):
    import json

    def ev(sid, kind, i, **body):
        return (sid.encode(), json.dumps({"schema_version": 1, "type": kind, "event_id": f"{sid}-{i}", "session_id": sid, **body}).encode())

    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    records = [
        ev("silent", "session_start", 0, env_name="crafter"),
        ev("silent", "turn", 1, turn=0, messages=msgs),
        ev("no-reward", "session_start", 0, env_name="crafter"),
        ev("no-reward", "turn", 1, turn=0, messages=msgs),
        ev("no-reward", "turn", 2, turn=2, messages=msgs),
        ev("no-reward", "session_end", 3, status="truncated", num_turns=3),
    ]
    topic, lake = topic_factory(), lake_uri_factory()
    publish(broker.bootstrap_servers, topic, records)
    worker = worker_factory(topic, lake, IDLE_TIMEOUT_S="4", REWARD_GRACE_S="2")

    def rows():
        return {r["session_id"]: r for r in read(lake, "sessions").to_pylist()} if lake_counts(lake)["sessions"] else {}

    wait_for(lambda: rows().get("silent", {}).get("status") == "abandoned" and rows()["no-reward"]["finalized"], 60, "timers", [worker])
    got = rows()
    assert got["silent"]["finalized"] is True and got["silent"]["total_reward"] is None
    assert got["no-reward"]["status"] == "truncated"
    assert (got["no-reward"]["num_turns"], got["no-reward"]["turns_received"], got["no-reward"]["missing_turns"]) == (3, 2, 1)


def test_faust_event_delivery_is_a_working_fallback(broker, topic_factory, lake_uri_factory, worker_factory):
    """FAST_DELIVERY=false: Faust's own per-record events and `noack_take` feed the same ingestor."""
    import random

    sessions = make_sessions(100, 10, seed=21, obs_chars=100)
    records = to_records(sessions, seed=21, duplicate_rate=0.05, early_reward_rate=0.1)
    poison = poison_records(10, seed=21)
    records += poison
    random.Random(21).shuffle(records)
    topic, lake = topic_factory(), lake_uri_factory()
    publish(broker.bootstrap_servers, topic, records)
    worker = worker_factory(topic, lake, FAST_DELIVERY="false")
    wait_for(complete(lake, sessions, len(poison)), 180, "every event in the lake", [worker])
    assert_exact(lake, sessions, len(poison))
    assert "arrive as Faust events (FAST_DELIVERY=false)" in worker.log()


def test_health_and_prometheus_metrics_on_the_web_port(broker, topic_factory, lake_uri_factory, worker_factory):
    import json
    import urllib.request

    sessions = make_sessions(20, 3, seed=9, obs_chars=50)
    topic, lake = topic_factory(), lake_uri_factory()
    worker = worker_factory(topic, lake)
    publish(broker.bootstrap_servers, topic, to_records(sessions, seed=9))
    wait_for(complete(lake, sessions, 0), 90, "the sessions", [worker])
    port = worker.env["WEB_PORT"]

    def get(path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.read().decode()

    def metrics_ready() -> bool:
        try:
            return 'rollout_lake_rows_total{table="turns"} 60.0' in get("/metrics")
        except OSError:
            return False

    wait_for(metrics_ready, 30, "the metrics page to count 60 turns", [worker])
    health = json.loads(get("/health"))
    assert health["status"] == "ok" and len(health["assigned"]) == 4 and health["delivery"] == "bulk"
    assert health["counters"].get("new_sessions_not_looked_up", 0) > 0, health  # the lake was not scanned for new ids
    parts = health["partitions"]
    assert len(parts) == 4 and all(p["seeking"] is None and p["next"] == p["highwater"] for p in parts.values()), parts
    assert sum(health["committed_offsets"].values()) >= len(to_records(sessions, seed=9)) - 4
    metrics = get("/metrics")
    for name in ("rollout_lake_open_sessions", "rollout_lake_consumer_lag", "rollout_lake_committed_offset",
                 "rollout_lake_dead_letters_total", "rollout_lake_commit_seconds", "rollout_lake_batches_total"):
        assert name in metrics, name
    assert 'rollout_lake_consumer_lag{partition="0",topic="%s"} 0.0' % topic in metrics
