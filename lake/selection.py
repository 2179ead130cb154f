"""Which sessions and examples a snapshot keeps: SQL over the pinned views, small tables only.

Every session gets one `drop_reason` (the first filter it fails, NULL when kept), then
best-per-task, the train/val split and the limit; examples are (session, turn) rows. No
message content is touched here: the heavy pass is the ordered stream in lake/export.py.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from lake.exceptions import FilterSpecError, QueryError
from lake.formats import POS_SCALE
from lake.reader import Lake, check_read_only
from lake.spec import DEFAULT_OBJECTIVE, SnapshotSpec, lit, session_predicates
from lake.views import task_stats_columns

__all__ = ["select", "val_key_fraction", "DATA_REASONS"]

# Reasons a session is dropped for what its data is, after the filters of filters.py.
DATA_REASONS = ("no_messages", "invalid_turn", "missing_turns", "nothing_to_salvage",
                "no_assistant_message", "not_best_for_task", "not_top_k_for_task", "limit")
_FAR = 1 << 62


def val_key_fraction(seed: int, key: str) -> float:
    """Where a task falls in [0, 1): sha256 of "seed:key", stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def select(lake: Lake, spec: SnapshotSpec) -> dict[str, Any]:
    """Build the _snap_* tables for `spec`; returns the session and example counts."""
    q = lake.query
    if spec.where:
        try:
            check_read_only(lake.con, f"SELECT * FROM sessions s WHERE ({spec.where})")
        except ValueError as exc:
            raise FilterSpecError(f"--where {spec.where!r} is not one SQL predicate: {exc}") from exc
    lake.lock_down()

    q(f"""
        CREATE OR REPLACE TABLE _snap_turn_info AS
        WITH t AS (
            SELECT session_id, turn, valid,
                   lead(turn) OVER (PARTITION BY session_id ORDER BY turn) AS nxt
            FROM raw_turns
        )
        SELECT session_id,
               min(turn) FILTER (WHERE valid = false) AS first_invalid,
               least(CASE WHEN min(turn) > 0 THEN 0 END,
                     min(turn + 1) FILTER (WHERE nxt > turn + 1)) AS first_gap,
               max(turn) AS max_turn
        FROM t GROUP BY session_id
    """)
    q(f"""
        CREATE OR REPLACE TABLE _snap_turn_msgs AS
        SELECT session_id, turn, count(*) AS n, count(*) FILTER (WHERE role IN ('system', 'developer')) AS n_sys,
               min(turn * {POS_SCALE} + idx_in_turn) FILTER (WHERE role = 'assistant') AS first_pos,
               max(turn * {POS_SCALE} + idx_in_turn) FILTER (WHERE role = 'assistant') AS last_pos,
               min(turn * {POS_SCALE} + idx_in_turn) AS min_pos,
               min(turn * {POS_SCALE} + idx_in_turn) FILTER (WHERE role NOT IN ('system', 'developer'))
                   AS min_pos_nonsys
        FROM raw_messages GROUP BY session_id, turn
    """)

    preds = session_predicates(spec)
    reason_case = " ".join(f"WHEN NOT ({p}) THEN {lit(r)}" for r, p in preds)
    filter_reason = f"CASE {reason_case} END" if preds else "NULL::VARCHAR"
    salvage = "true" if spec.salvage else "false"
    # Invalid turns masked out of the loss are context, not a reason to drop or cut a session.
    invalid = "NULL::BIGINT" if spec.mask_invalid_turns else "ti.first_invalid"
    try:
        q(f"""
            CREATE OR REPLACE TABLE _snap_sessions AS
            WITH {_task_filter_sql(spec, filter_reason)},
            b AS (
                SELECT f.*, {invalid} AS first_invalid,
                       least(ti.first_gap,
                             CASE WHEN f.num_turns > ti.max_turn + 1 THEN ti.max_turn + 1 END,
                             CASE WHEN ti.session_id IS NULL AND f.num_turns > 0 THEN 0 END)
                           AS first_missing,
                       m.n_msgs, coalesce(m.has_asst, false) AS has_asst
                FROM f
                LEFT JOIN _snap_turn_info ti ON ti.session_id = f.session_id
                LEFT JOIN (SELECT session_id, sum(n) AS n_msgs,
                                  bool_or(first_pos IS NOT NULL) AS has_asst
                           FROM _snap_turn_msgs GROUP BY session_id) m
                       ON m.session_id = f.session_id
            ),
            c AS (
                SELECT b.*, CASE WHEN {salvage} THEN least(first_invalid, first_missing) END AS cut_turn
                FROM b
            ),
            l AS (
                SELECT c.session_id, max(a.turn) AS last_asst_turn
                FROM c JOIN _snap_turn_msgs a ON a.session_id = c.session_id
                WHERE a.first_pos IS NOT NULL AND a.turn < coalesce(c.cut_turn, {_FAR})
                GROUP BY c.session_id
            )
            SELECT c.session_id, c.started_at, c.task_id, c.total_reward, c.achievements_count,
                   c.achievements, c.env_name, c.model, c.split, c.status,
                   c.cut_turn, l.last_asst_turn,
                   CASE
                       WHEN c.filter_reason IS NOT NULL THEN c.filter_reason
                       WHEN coalesce(c.n_msgs, 0) = 0 THEN 'no_messages'
                       WHEN NOT {salvage} AND c.first_invalid IS NOT NULL THEN 'invalid_turn'
                       WHEN NOT {salvage} AND c.first_missing IS NOT NULL THEN 'missing_turns'
                       WHEN l.last_asst_turn IS NULL AND c.has_asst THEN 'nothing_to_salvage'
                       WHEN l.last_asst_turn IS NULL THEN 'no_assistant_message'
                   END AS drop_reason,
                   c.policy_name, c.seed, c.run_id, c.judgment, c.tools
            FROM c LEFT JOIN l ON l.session_id = c.session_id
        """)
    except QueryError as exc:
        if spec.where:
            raise FilterSpecError(f"--where {spec.where!r} failed: {exc}") from exc
        raise

    order = "started_at NULLS LAST, session_id"
    top_k = 1 if spec.best_per_task else spec.top_k_per_task
    if top_k is not None:
        rank = (
            "row_number() OVER (PARTITION BY coalesce(task_id, chr(0) || session_id) "
            "ORDER BY total_reward DESC NULLS LAST, achievements_count DESC NULLS LAST, "
            "last_asst_turn ASC, session_id ASC)"
        )
    else:
        rank = "1"
    # Views: only _snap_kept is materialized (the rest is counted once, in counts()).
    q(f"""
        CREATE OR REPLACE VIEW _snap_best AS
        SELECT * FROM (SELECT *, {rank} AS task_rank FROM _snap_sessions WHERE drop_reason IS NULL)
        WHERE task_rank <= {int(top_k or 1)}
    """)
    limit = f"WHERE sess_ord < {int(spec.limit)}" if spec.limit is not None else ""
    q(f"""
        CREATE OR REPLACE VIEW _snap_ordered AS
        SELECT * FROM (SELECT *, row_number() OVER (ORDER BY {order}) - 1 AS sess_ord FROM _snap_best)
        {limit}
    """)

    # The train/val split in SQL, the same as val_key_fraction per key (sha256 of "seed:key", its
    # first 8 bytes over 2**64); with two keys or more neither side comes out empty: the key
    # nearest the cut moves. In SQL because handing DuckDB Python values imports pandas (0.5 s).
    vf = float(spec.val_fraction)
    # Without a val split no key needs its hash (a sha256 per task).
    frac = (f"('0x' || substr(sha256({lit(str(int(spec.split_seed)) + ':')} || _split_key), 1, 16))"
            "::UBIGINT::DOUBLE / 18446744073709551616.0") if vf > 0 else "1.0"
    q(f"""
        CREATE OR REPLACE TABLE _snap_kept AS
        WITH k AS (
            SELECT o.*, CASE WHEN task_id IS NOT NULL THEN 'task:' || task_id
                             ELSE 'session:' || session_id END AS _split_key
            FROM _snap_ordered o
        ),
        f AS (
            SELECT _split_key, {frac} AS frac
            FROM (SELECT DISTINCT _split_key FROM k)
        ),
        v AS (
            SELECT _split_key, frac < {vf!r} AS in_val, count(*) OVER () AS n_keys,
                   count(*) FILTER (WHERE frac < {vf!r}) OVER () AS n_val,
                   row_number() OVER (ORDER BY frac, _split_key) AS lowest,
                   row_number() OVER (ORDER BY frac DESC, _split_key DESC) AS highest
            FROM f
        )
        SELECT k.* EXCLUDE (_split_key, tools),
               CASE WHEN {vf!r} <= 0 THEN false
                    WHEN n_keys >= 2 AND n_val = 0 AND lowest = 1 THEN true
                    WHEN n_keys >= 2 AND n_val = n_keys AND highest = 1 THEN false
                    ELSE in_val END AS is_val,
               coalesce(json(k.tools)::VARCHAR, '[]') AS tools_json,
               to_json({{
                   'session_id': k.session_id, 'env_name': k.env_name,
                   'policy_name': k.policy_name, 'model': k.model, 'task_id': k.task_id,
                   'split': k.split, 'seed': k.seed, 'run_id': k.run_id,
                   'total_reward': k.total_reward, 'achievements_count': k.achievements_count,
                   'status': k.status, 'judgment': k.judgment,
                   'salvaged': k.cut_turn IS NOT NULL
               }})::VARCHAR AS meta_json
        FROM k JOIN v USING (_split_key)
    """)

    if spec.granularity == "turn" and spec.format != "preference":
        window = "0" if spec.context_turns is None else f"greatest(a.turn - {int(spec.context_turns)}, 0)"
        q(f"""
            CREATE OR REPLACE TABLE _snap_examples AS
            SELECT row_number() OVER (ORDER BY k.sess_ord, a.turn) - 1 AS ex_ord,
                   k.session_id, a.turn AS ex_turn, {window} AS win_start,
                   a.first_pos AS comp_start, a.last_pos AS end_pos, k.is_val
            FROM _snap_kept k JOIN _snap_turn_msgs a ON a.session_id = k.session_id
            WHERE a.first_pos IS NOT NULL AND a.turn <= k.last_asst_turn
        """)
    else:
        q("""
            CREATE OR REPLACE TABLE _snap_examples AS
            SELECT row_number() OVER (ORDER BY k.sess_ord) - 1 AS ex_ord,
                   k.session_id, a.turn AS ex_turn, 0 AS win_start,
                   a.first_pos AS comp_start, a.last_pos AS end_pos, k.is_val
            FROM _snap_kept k
            JOIN _snap_turn_msgs a ON a.session_id = k.session_id AND a.turn = k.last_asst_turn
        """)
    return counts(lake, spec)


def _task_filter_sql(spec: SnapshotSpec, filter_reason: str) -> str:
    """CTE `f`: sessions with `filter_reason`, task-statistics bounds applied after the filters."""
    bounds = [("min_task_std", "std", ">=", spec.min_task_std), ("max_task_mean", "mean", "<=", spec.max_task_mean),
              ("min_task_mean", "mean", ">=", spec.min_task_mean)]
    active = [(reason, col, op, obj, v) for reason, col, op, b in bounds for obj, v in b.items()]
    if not active:
        return f"f AS (SELECT s.*, {filter_reason} AS filter_reason FROM sessions s)"
    objectives = sorted({obj for _, _, _, obj, _ in active})
    stats = []
    for i, obj in enumerate(objectives):
        reward = "total_reward" if obj == DEFAULT_OBJECTIVE else f"rewards[{lit(obj)}]"
        stats.append(f"""
            ts{i} AS (SELECT task_id, {task_stats_columns('r')}
                      FROM (SELECT task_id, {reward} AS r FROM f0
                            WHERE filter_reason IS NULL AND task_id IS NOT NULL AND {reward} IS NOT NULL)
                      GROUP BY task_id)""")
    joins = " ".join(f"LEFT JOIN ts{i} ON ts{i}.task_id = f0.task_id" for i in range(len(objectives)))
    cases = " ".join(
        f"WHEN NOT coalesce(ts{objectives.index(obj)}.{col} {op} {lit(v)}, false) THEN {lit(reason)}"
        for reason, col, op, obj, v in active
    )
    return f"""
        f0 AS (SELECT s.*, {filter_reason} AS filter_reason FROM sessions s),
        {",".join(stats)},
        f AS (SELECT f0.* REPLACE (coalesce(f0.filter_reason, CASE {cases} END) AS filter_reason)
              FROM f0 {joins})"""


def counts(lake: Lake, spec: SnapshotSpec) -> dict[str, Any]:
    q = lake.query
    total = q("SELECT count(*) FROM _snap_sessions").fetchone()[0]
    dropped = dict(q("""
        SELECT drop_reason, count(*) FROM _snap_sessions WHERE drop_reason IS NOT NULL
        GROUP BY ALL ORDER BY drop_reason
    """).fetchall())
    passed = q("SELECT count(*) FROM _snap_sessions WHERE drop_reason IS NULL").fetchone()[0]
    best = q("SELECT count(*) FROM _snap_best").fetchone()[0]
    kept = q("SELECT count(*) FROM _snap_kept").fetchone()[0]
    if passed - best:
        dropped["not_top_k_for_task" if spec.top_k_per_task and not spec.best_per_task else "not_best_for_task"] = passed - best
    if best - kept:
        dropped["limit"] = best - kept
    ex = dict(q("SELECT is_val, count(*) FROM _snap_examples GROUP BY ALL").fetchall())
    kept_val = q("SELECT count(*) FROM _snap_kept WHERE is_val").fetchone()[0]
    return {
        "sessions_total": int(total),
        "sessions_kept": int(kept),
        "sessions_train": int(kept - kept_val),
        "sessions_val": int(kept_val),
        "dropped": {k: int(v) for k, v in sorted(dropped.items())},
        "examples": {"train": int(ex.get(False, 0)), "val": int(ex.get(True, 0))},
    }


def kept_stats(lake: Lake) -> dict[str, Any]:
    """Distributions over the kept sessions (deterministic: exact sums, sorted keys)."""
    q = lake.query

    def by(column: str) -> dict[str, int]:
        rows = q(f"SELECT coalesce({column}::VARCHAR, '(none)'), count(*) FROM _snap_kept GROUP BY ALL ORDER BY 1")
        return {str(k): int(v) for k, v in rows.fetchall()}

    rewards = sorted(r for (r,) in q("SELECT total_reward FROM _snap_kept WHERE total_reward IS NOT NULL").fetchall())
    ach = sorted(int(a or 0) for (a,) in q("SELECT achievements_count FROM _snap_kept").fetchall())
    top = q("""
        SELECT a, count(*) FROM (SELECT unnest(achievements) AS a FROM _snap_kept)
        GROUP BY a ORDER BY count(*) DESC, a LIMIT 50
    """).fetchall()
    return {
        "by_env": by("env_name"),
        "by_model": by("model"),
        "by_split": by("split"),
        "by_status": by("status"),
        "salvaged": int(q("SELECT count(*) FROM _snap_kept WHERE cut_turn IS NOT NULL").fetchone()[0]),
        "tasks": int(q("SELECT count(DISTINCT coalesce(task_id, session_id)) FROM _snap_kept").fetchone()[0]),
        "reward": _summary(rewards),
        "achievements_count": _summary(ach),
        "achievements": {str(a): int(n) for a, n in top},
    }


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "min": None, "max": None, "mean": None, "median": None}
    n = len(values)
    mid = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return {
        "count": n,
        "min": values[0],
        "max": values[-1],
        "mean": round(math.fsum(values) / n, 6),
        "median": mid,
    }
