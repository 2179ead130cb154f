"""The SQL views users query: the Delta tables pinned to one version, and the latest truth.

Each table `t` is exposed twice: `raw_t` is the table exactly as stored (at the pinned
version) and `t` is what a user should read. Rewards and judgments are appended as received,
so the views resolve the latest one per session (by ts, then Kafka position) and overlay it
on `sessions`: a reward that arrives after the session was finalized still shows up there.
"""

from __future__ import annotations

__all__ = ["VIEW_SQL", "VIEWS", "PASS_AT_K", "task_stats_columns", "view_statements"]

PASS_AT_K = (1, 5, 10)


def task_stats_columns(reward: str) -> str:
    """Aggregates of one task group's rewards (`reward`: a column or expression)."""
    c = f"count(*) FILTER (WHERE {reward} > 0)"
    # C(n-c,k)/C(n,k) through lgamma: exact enough and no overflow for big groups.
    pass_at = ", ".join(
        f"""CASE WHEN count({reward}) < {k} THEN NULL WHEN count({reward}) - {c} < {k} THEN 1.0
                 ELSE 1.0 - exp(lgamma(count({reward}) - {c} + 1) - lgamma(count({reward}) - {c} - {k} + 1)
                                - lgamma(count({reward}) + 1) + lgamma(count({reward}) - {k} + 1)) END
            AS pass_at_{k}"""
        for k in PASS_AT_K
    )
    return (
        f"count({reward}) AS n, avg({reward}) AS mean, coalesce(stddev_pop({reward}), 0) AS std, "
        f"min({reward}) AS min, max({reward}) AS max, {c} AS successes, "
        f"{c} / count({reward}) AS success_rate, {pass_at}"
    )


# Latest first: event time, then Kafka position (one session lives on one partition).
_LATEST = "ts DESC NULLS LAST, kafka_partition DESC, kafka_offset DESC, event_id DESC"

VIEW_SQL: dict[str, str] = {
    "latest_rewards": f"""
        SELECT session_id, objective, total_reward, achievements,
               len(coalesce(achievements, [])) AS achievements_count,
               source, ts, event_id
        FROM raw_rewards
        WHERE kind = 'outcome_reward'
        QUALIFY row_number() OVER (PARTITION BY session_id, objective ORDER BY {_LATEST}) = 1
    """,
    "latest_judgments": f"""
        SELECT session_id, label AS judgment, score AS judgment_score, source AS judgment_source,
               reason AS judgment_reason, ts AS judged_at, event_id
        FROM raw_rewards
        WHERE kind = 'judgment'
        QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY {_LATEST}) = 1
    """,
    "session_outcomes": """
        WITH r AS (
            SELECT session_id,
                   map_from_entries(list({'k': objective, 'v': total_reward} ORDER BY objective))
                       AS rewards,
                   any_value(total_reward) FILTER (WHERE objective = 'reward') AS total_reward,
                   any_value(achievements) FILTER (WHERE objective = 'reward') AS achievements,
                   any_value(ts) FILTER (WHERE objective = 'reward') AS rewarded_at
            FROM latest_rewards
            GROUP BY session_id
        )
        SELECT coalesce(r.session_id, j.session_id) AS session_id,
               r.total_reward, r.achievements,
               len(coalesce(r.achievements, [])) AS achievements_count,
               r.rewards, r.rewarded_at,
               j.judgment, j.judgment_score, j.judgment_source, j.judgment_reason, j.judged_at
        FROM r FULL OUTER JOIN latest_judgments j ON r.session_id = j.session_id
    """,
    # An outcome reward without achievements keeps the achievements the session already had.
    "sessions": """
        SELECT s.* REPLACE (
                   coalesce(o.total_reward, s.total_reward) AS total_reward,
                   CASE WHEN len(coalesce(o.achievements, [])) > 0 THEN o.achievements
                        ELSE s.achievements END AS achievements,
                   CASE WHEN len(coalesce(o.achievements, [])) > 0 THEN o.achievements_count
                        ELSE coalesce(s.achievements_count, len(coalesce(s.achievements, [])))
                   END AS achievements_count,
                   coalesce(o.judgment, s.judgment) AS judgment
               ),
               coalesce(o.rewards, CASE WHEN s.total_reward IS NOT NULL
                   THEN map_from_entries([{'k': 'reward', 'v': s.total_reward}]) END) AS rewards,
               o.judgment_score
        FROM raw_sessions s LEFT JOIN session_outcomes o ON s.session_id = o.session_id
    """,
    # Per task and objective: the group statistics GRPO-style filters need (zero variance,
    # difficulty). success = reward > 0; pass@k is the unbiased estimator 1 - C(n-c,k)/C(n,k).
    "task_stats": f"""
        WITH r AS (
            SELECT task_id, unnest(map_keys(rewards)) AS objective, unnest(map_values(rewards)) AS reward
            FROM sessions WHERE task_id IS NOT NULL AND rewards IS NOT NULL
        )
        SELECT task_id, objective, {task_stats_columns("reward")}
        FROM r WHERE reward IS NOT NULL GROUP BY task_id, objective
    """,
    "turns": "SELECT * FROM raw_turns",
    "messages": """
        SELECT session_id, turn,
               row_number() OVER (PARTITION BY session_id ORDER BY turn, idx_in_turn) - 1 AS idx,
               idx_in_turn, role, content, content_is_parts, tool_calls, tool_call_id, name, ts,
               event_id, kafka_topic, kafka_partition, kafka_offset
        FROM raw_messages
    """,
    "rewards": "SELECT * FROM raw_rewards",
    "dead_letters": """
        SELECT error, TRY(decode(raw)) AS raw_text, key, raw, received_at,
               kafka_topic, kafka_partition, kafka_offset
        FROM raw_dead_letters
    """,
}
VIEWS = tuple(VIEW_SQL)


def view_statements() -> list[str]:
    """CREATE VIEW statements in dependency order (the raw_* relations must exist)."""
    return [f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in VIEW_SQL.items()]
