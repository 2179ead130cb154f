"""Crash the worker with SIGKILL mid-stream, at chosen points and at random, and across a group."""

from __future__ import annotations

import random

import pytest

from tests.conftest import assert_exact, complete, lake_counts, publish, wait_for
from tests.faults.conftest import workload

pytestmark = pytest.mark.fault

HOOKS = "tests.faults.hooks:KillAt"


def test_sigkill_before_and_after_delta_commits_then_restart(broker, topic_factory, lake_uri_factory, worker_factory):
    sessions, records, poison = workload(seed=11)
    topic, lake = topic_factory(), lake_uri_factory()
    publish(broker.bootstrap_servers, topic, records)
    group = "g-fault-points"
    small = {"BATCH_MAX_ROWS": "400"}
    # 1: dies just before its 3rd commit; 2: right after its 2nd Delta commit, before any ack.
    first = worker_factory(topic, lake, group=group, WORKER_HOOKS=HOOKS, KILL_BEFORE_COMMIT="3", **small)
    wait_for(lambda: first.proc.poll() is not None, 120, "the first worker to die", [first])
    assert lake_counts(lake)["turns"] > 0
    second = worker_factory(topic, lake, group=group, WORKER_HOOKS=HOOKS, KILL_AFTER_COMMIT="2", **small)
    wait_for(lambda: second.proc.poll() is not None, 120, "the second worker to die", [second])
    third = worker_factory(topic, lake, group=group, **small)
    wait_for(complete(lake, sessions, len(poison)), 240, "every event in the lake", [first, second, third])
    assert_exact(lake, sessions, len(poison))


def test_sigkill_at_random_moments_mid_stream(broker, topic_factory, lake_uri_factory, worker_factory):
    sessions, records, poison = workload(seed=12)
    topic, lake = topic_factory(), lake_uri_factory()
    publish(broker.bootstrap_servers, topic, records)
    total = sum(s.num_turns for s in sessions)
    rng = random.Random(12)
    workers = []
    for fraction in (0.2, 0.55):
        w = worker_factory(topic, lake, group="g-fault-random", BATCH_MAX_ROWS="300")
        workers.append(w)
        wait_for(lambda: lake_counts(lake)["turns"] >= fraction * total, 180, f"{fraction:.0%} of turns", workers)
        # A random extra delay so the kill lands anywhere in the commit cycle.
        import time

        time.sleep(rng.uniform(0, 0.6))
        w.kill()
    workers.append(worker_factory(topic, lake, group="g-fault-random", BATCH_MAX_ROWS="300"))
    wait_for(complete(lake, sessions, len(poison)), 240, "every event in the lake", workers)
    assert_exact(lake, sessions, len(poison))


def test_two_workers_in_one_group_one_killed(broker, topic_factory, lake_uri_factory, worker_factory):
    sessions, records, poison = workload(seed=13, n_sessions=400)
    topic, lake = topic_factory(), lake_uri_factory()
    group = "g-fault-pair"
    a = worker_factory(topic, lake, group=group, BATCH_MAX_ROWS="300")
    b = worker_factory(topic, lake, group=group, BATCH_MAX_ROWS="300")
    publish(broker.bootstrap_servers, topic, records[: len(records) // 2])
    total = sum(s.num_turns for s in sessions)
    wait_for(lambda: lake_counts(lake)["turns"] >= 0.2 * total, 180, "both workers ingesting", [a, b])
    b.kill()
    publish(broker.bootstrap_servers, topic, records[len(records) // 2 :])
    wait_for(complete(lake, sessions, len(poison)), 240, "the survivor to ingest everything", [a, b])
    assert_exact(lake, sessions, len(poison))


def test_two_workers_on_one_host_both_run(broker, topic_factory, lake_uri_factory, worker_factory):
    """Each worker's web server takes its own port, so neither dies at start-up."""
    import time

    topic, lake = topic_factory(), lake_uri_factory()
    workers = [worker_factory(topic, lake, group="g-two-alive") for _ in range(2)]
    wait_for(lambda: all("Worker]: Ready" in w.log() for w in workers), 90, "both workers ready", workers)
    time.sleep(2)
    assert all(w.proc.poll() is None for w in workers), "\n".join(w.log()[-2000:] for w in workers)



def test_sigkill_between_the_appends_and_the_sessions_merge(broker, topic_factory, lake_uri_factory, worker_factory):
    """The batch's turns are in, its sessions rows are not: the restart reads those records again."""
    from deltalake import DeltaTable

    from lake.tables import table_uri

    sessions, records, poison = workload(seed=14, n_sessions=150)
    topic, lake = topic_factory(1), lake_uri_factory()
    publish(broker.bootstrap_servers, topic, records)
    group = "g-fault-merge"
    first = worker_factory(topic, lake, group=group, WORKER_HOOKS=HOOKS, KILL_AFTER_APPENDS="2", BATCH_MAX_ROWS="300")
    wait_for(lambda: first.proc.poll() is not None, 120, "the worker to die between appends and MERGE", [first])
    app = f"rollout-lake:{topic}:0"
    turns_at = DeltaTable(table_uri(lake, "turns")).transaction_version(app)
    sessions_at = DeltaTable(table_uri(lake, "sessions")).transaction_version(app)
    assert turns_at is not None and (sessions_at or -1) < turns_at, (turns_at, sessions_at)
    second = worker_factory(topic, lake, group=group, BATCH_MAX_ROWS="300")
    wait_for(complete(lake, sessions, len(poison)), 240, "every session row after the restart", [first, second])
    assert_exact(lake, sessions, len(poison))


def test_a_failed_commit_stops_the_worker_and_a_restart_loses_nothing(broker, topic_factory, lake_uri_factory,
                                                                       worker_factory):
    """A commit that raises (the store went away between the appends and the MERGE) must not leave
    a worker running that no longer ingests: it stops, and the restarted one ingests every event once."""
    sessions, records, poison = workload(seed=14, n_sessions=150)
    topic, lake = topic_factory(), lake_uri_factory()
    publish(broker.bootstrap_servers, topic, records)
    group = "g-fault-commit-error"
    failing = worker_factory(topic, lake, group=group, BATCH_MAX_ROWS="300", WORKER_HOOKS=HOOKS, FAIL_AFTER_APPENDS="2")
    wait_for(lambda: failing.proc.poll() is not None, 120, "the worker to stop after its failed commit", [failing])
    assert failing.proc.returncode != 0  # a supervisor's restart-on-failure policy must see it
    log = failing.log()
    assert "fault injection: commit 2 fails after its appends" in log
    assert "stopping the worker after a failed commit" in log
    restarted = worker_factory(topic, lake, group=group, BATCH_MAX_ROWS="300")
    wait_for(complete(lake, sessions, len(poison)), 240, "every event in the lake", [failing, restarted])
    assert_exact(lake, sessions, len(poison))
