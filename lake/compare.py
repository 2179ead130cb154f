"""Experiment comparison from the lake itself: per model/run, reward, achievements and valid tool-call rate with 95% CIs."""

from __future__ import annotations

from typing import Any

__all__ = ["COMPARE_SQL", "compare_runs"]

# Normal-approximation 95% intervals (1.96 * standard error); n=1 groups get no interval.
COMPARE_SQL = """
WITH per_session AS (
    SELECT s.session_id, s.model, s.run_id, s.policy_name, s.env_name, s.status,
           s.total_reward, s.achievements_count,
           t.valid_rate, t.turns
    FROM sessions s
    LEFT JOIN (
        SELECT session_id, avg(CASE WHEN valid THEN 1.0 ELSE 0.0 END) AS valid_rate, count(*) AS turns
        FROM turns GROUP BY session_id
    ) t USING (session_id)
    WHERE {where}
)
SELECT {group_cols},
       count(*) AS sessions,
       avg(total_reward) AS reward_mean,
       stddev_samp(total_reward) AS reward_std,
       1.96 * stddev_samp(total_reward) / sqrt(count(total_reward)) AS reward_ci95,
       avg(achievements_count) AS achievements_mean,
       stddev_samp(achievements_count) AS achievements_std,
       1.96 * stddev_samp(achievements_count) / sqrt(count(achievements_count)) AS achievements_ci95,
       avg(valid_rate) AS valid_tool_call_rate,
       1.96 * stddev_samp(valid_rate) / sqrt(count(valid_rate)) AS valid_tool_call_rate_ci95,
       avg(turns) AS turns_mean
FROM per_session
GROUP BY ALL
ORDER BY {group_cols}
"""


def compare_runs(lake: Any, *, by: tuple[str, ...] = ("model", "run_id"), where: str | None = None) -> list[dict[str, Any]]:
    """Rows of COMPARE_SQL for an open `lake.reader.Lake`, grouped by `by` (session columns)."""
    allowed = {"model", "run_id", "policy_name", "env_name", "status"}
    bad = [col for col in by if col not in allowed]
    if bad:
        from lake.exceptions import QueryError

        raise QueryError(f"cannot group by {bad}; choose from {sorted(allowed)}")
    sql = COMPARE_SQL.format(where=f"({where})" if where else "TRUE", group_cols=", ".join(by))
    if where:
        from lake.exceptions import QueryError
        from lake.reader import check_read_only

        # The predicate is user text: it must be one expression (the whole query one SELECT),
        # and it runs in the same sandbox as `lake sql` (no files outside the lake, no settings).
        try:
            check_read_only(lake.con, f"SELECT * FROM sessions WHERE ({where})")
            check_read_only(lake.con, sql)
        except ValueError as exc:
            raise QueryError(f"--where {where!r} is not one SQL predicate over `sessions`: {exc}") from exc
        lake.lock_down()
    result = lake.query(sql)
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row)) for row in result.fetchall()]
