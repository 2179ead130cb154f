"""Workers coming and going mid-stream: a clean rebalance, and SIGKILLs at random commit points
repeated while the producer keeps publishing. Exact counts, zero duplicates, every time."""

from __future__ import annotations

import random
import uuid

import pytest

from tests.conftest import lake_counts, publish, wait_for
from tests.faults.conftest import exact, expected, explain_loss, workload

pytestmark = pytest.mark.fault


def test_second_worker_joins_mid_stream_then_leaves_with_sigterm(broker, topic_factory, lake_uri_factory, workers):
    sessions, records, poison = workload(seed=31, n_sessions=400)
    topic, lake = topic_factory(), lake_uri_factory()
    group = f"g-rebalance-{uuid.uuid4().hex[:6]}"
    total = sum(s.num_turns for s in sessions)
    a = workers(topic, lake, group=group, BATCH_MAX_ROWS="300")
    publish(broker.bootstrap_servers, topic, records[: len(records) // 3])
    wait_for(lambda: lake_counts(lake)["turns"] >= 0.15 * total, 120, "the first worker ingesting", [a])

    # A second worker joins: the group rebalances while records keep arriving.
    b = workers(topic, lake, group=group, BATCH_MAX_ROWS="300")
    publish(broker.bootstrap_servers, topic, records[len(records) // 3 : 2 * len(records) // 3])
    wait_for(lambda: "assigned [" in b.log(), 90, "the second worker to get partitions", [a, b])
    wait_for(lambda: lake_counts(lake)["turns"] >= 0.5 * total, 120, "both workers ingesting", [a, b])

    # ... and leaves cleanly (SIGTERM): it commits what it holds and hands its partitions back.
    publish(broker.bootstrap_servers, topic, records[2 * len(records) // 3 :])
    b.stop()
    assert b.proc.returncode is not None
    try:
        wait_for(lambda: lake_counts(lake)["turns"] == total and lake_counts(lake)["dead_letters"] == len(poison),
                 180, "the remaining worker to ingest everything", [a, b])
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlake: {lake_counts(lake)}\n{explain_loss(lake, sessions, broker.bootstrap_servers, topic, group)}") from None
    wait_for(lambda: lake_counts(lake)["sessions"] == len(sessions), 60, "every session row", [a])
    exact(lake, expected(sessions, len(poison)))
    # The first worker went through at least two assignments: before and after the second joined/left.
    assert a.log().count("assigned [") >= 2, a.log()[-3000:]


def test_sigkill_at_random_commit_points_repeated_while_publishing(broker, topic_factory, lake_uri_factory, workers):
    sessions, records, poison = workload(seed=32, n_sessions=300)
    topic, lake = topic_factory(), lake_uri_factory()
    group = f"g-repeat-{uuid.uuid4().hex[:6]}"
    rng = random.Random(32)
    chunks = [records[i::4] for i in range(4)]  # publish in rounds, so kills land mid-stream
    kills = []
    for round_ in range(3):
        publish(broker.bootstrap_servers, topic, chunks[round_])
        point = rng.choice(["KILL_BEFORE_COMMIT", "KILL_AFTER_APPENDS", "KILL_AFTER_COMMIT"])
        n = rng.randint(1, 3)
        kills.append((point, n))
        w = workers(topic, lake, group=group, BATCH_MAX_ROWS="300", WORKER_HOOKS="tests.faults.hooks:KillAt", **{point: str(n)})
        wait_for(lambda: w.proc.poll() is not None, 120, f"the worker to die at {point}={n}", [w])
        assert w.proc.returncode == -9, f"round {round_}: worker exited with {w.proc.returncode}, not SIGKILL"
        assert "fault injection: SIGKILL" in w.log()
    publish(broker.bootstrap_servers, topic, chunks[3])
    last = workers(topic, lake, group=group, BATCH_MAX_ROWS="300")
    want = expected(sessions, len(poison))
    try:
        wait_for(lambda: lake_counts(lake) == want, 180, f"every event in the lake after kills {kills}", [last])
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{explain_loss(lake, sessions, broker.bootstrap_servers, topic, group)}") from None
    exact(lake, want)
