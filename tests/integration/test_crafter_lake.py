"""The Crafter task app end to end: real episodes -> embedded broker -> worker -> the lake."""

from __future__ import annotations

from examples.crafter.taskapp import run_episodes
from lake.reader import connect
from tests.conftest import lake_counts, wait_for


def test_teacher_episodes_land_in_the_lake_with_turns_and_rewards(broker, topic_factory, lake_uri_factory, worker_factory):
    topic, lake = topic_factory(), lake_uri_factory()
    worker = worker_factory(topic, lake)
    results = run_episodes(
        [0, 4], policy="teacher", max_turns=4, bootstrap_servers=broker.bootstrap_servers, topic=topic,
        run_id="crafter-lake-test",
    )
    turns = sum(r.num_turns for r in results)
    wait_for(lambda: lake_counts(lake)["turns"] == turns and lake_counts(lake)["rewards"] == 2, 120,
             "the episodes in the lake", [worker])
    with connect(lake) as con:
        sessions = con.query(
            "SELECT session_id, env_name, policy_name, task_id, status, num_turns, turns_received, total_reward, "
            "achievements_count FROM sessions ORDER BY task_id"
        ).fetchall()
        roles = con.query("SELECT list(role ORDER BY idx) FROM messages GROUP BY session_id, turn").fetchall()
        calls = con.query("SELECT count(*) FROM messages WHERE role = 'assistant' AND tool_calls IS NOT NULL").fetchone()[0]
    by_id = {r.session_id: r for r in results}
    assert len(sessions) == 2
    for sid, env, policy, task, status, num_turns, received, reward, n_ach in sessions:
        r = by_id[sid]
        assert (env, policy, task, status) == ("crafter", r.policy_name, r.task_id, r.status)
        assert num_turns == received == r.num_turns
        assert reward == r.total_reward and n_ach == len(r.achievements)
    assert all(row[0] == ["system", "user", "assistant", "tool"] for row in roles)
    assert calls == turns
