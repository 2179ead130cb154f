"""What each page reads: small SQL over the views of a pinned `lake.reader.Lake`, as plain dicts.

User values reach SQL only as quoted literals (lake.spec.lit; like the rest of the lake, no
Python value is bound as a parameter, which would import pandas); column names come from fixed lists.
"""

from __future__ import annotations

import json
from typing import Any

from lake.spec import SnapshotSpec, lit, session_predicates

__all__ = [
    "SESSION_SORTS", "TASK_SORTS", "choices", "dead_letter", "dead_letters", "list_sessions", "message",
    "safe_preview", "session_counts", "session_detail", "task_page", "task_stats",
]

# Messages longer than this are cut on the session page, with a link to the whole one.
TRUNCATE_CHARS = 4000

SESSION_SORTS = {
    "started_at": "s.started_at DESC NULLS LAST",
    "reward": "s.total_reward DESC NULLS LAST",
    "achievements": "s.achievements_count DESC NULLS LAST",
    "turns": "coalesce(s.num_turns, s.turns_received) DESC NULLS LAST",
    "session_id": "s.session_id",
}
TASK_SORTS = ("task_id", "n", "mean", "std", "success_rate")


def _dicts(result: Any) -> list[dict[str, Any]]:
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row)) for row in result.fetchall()]


def _where(spec: SnapshotSpec) -> str:
    return " AND ".join(f"({p})" for _, p in session_predicates(spec)) or "TRUE"


def session_counts(lake: Any, spec: SnapshotSpec) -> dict[str, Any]:
    """How many sessions the lake holds and how many the filters keep, by status."""
    by_status = lake.query(f"""
        SELECT coalesce(s.status, '(none)') AS status, count(*) AS total,
               count(*) FILTER (WHERE {_where(spec)}) AS matched
        FROM sessions s GROUP BY ALL ORDER BY matched DESC, total DESC, status
    """).fetchall()
    return {
        "total": sum(r[1] for r in by_status),
        "matched": sum(r[2] for r in by_status),
        "by_status": [(status, matched) for status, _, matched in by_status if matched],
    }


def list_sessions(lake: Any, spec: SnapshotSpec, *, sort: str, offset: int, limit: int) -> list[dict[str, Any]]:
    """One page of the sessions the filters keep."""
    return _dicts(lake.query(f"""
        SELECT s.session_id, s.env_name, s.policy_name, s.model, s.run_id, s.task_id, s.split, s.status,
               coalesce(s.num_turns, s.turns_received) AS turns, s.total_reward, s.achievements_count,
               s.judgment, s.started_at
        FROM sessions s WHERE {_where(spec)}
        ORDER BY {SESSION_SORTS[sort]}, s.session_id
        LIMIT {int(limit)} OFFSET {int(offset)}
    """))


def choices(lake: Any, limit: int = 200) -> dict[str, list[str]]:
    """Distinct values of the filterable columns, for the form's suggestions.

    Read from the stored rows plus the latest rewards and judgments, not through the `sessions`
    view: the same values, without resolving every session's outcome (10x faster).
    """
    cols = ("split", "task_id", "model", "run_id", "status", "env_name", "policy_name")
    out: dict[str, list[str]] = {c: [] for c in (*cols, "judgment", "achievement")}
    rows = lake.query(f"""
        SELECT {", ".join(cols)} FROM raw_sessions
        GROUP BY GROUPING SETS ({", ".join(f"({c})" for c in cols)})
    """).fetchall()
    for row in rows:
        for c, v in zip(cols, row):
            if v is not None:
                out[c].append(v)
    out["judgment"] = [r[0] for r in lake.query("""
        SELECT judgment FROM raw_sessions WHERE judgment IS NOT NULL
        UNION SELECT judgment FROM latest_judgments WHERE judgment IS NOT NULL
    """).fetchall()]
    out["achievement"] = [r[0] for r in lake.query("""
        SELECT a FROM (SELECT unnest(achievements) AS a FROM raw_sessions) WHERE a IS NOT NULL
        UNION SELECT a FROM (SELECT unnest(achievements) AS a FROM latest_rewards) WHERE a IS NOT NULL
    """).fetchall()]
    return {c: sorted(v)[:limit] for c, v in out.items()}


def session_detail(lake: Any, session_id: str) -> dict[str, Any] | None:
    """Everything about one session: its row, turns with their messages, rewards as received."""
    found = _dicts(lake.query(f"SELECT * FROM sessions WHERE session_id = {lit(session_id)}"))
    if not found:
        return None
    session = found[0]
    sid = lit(session_id)
    turns = {t["turn"]: {**t, "messages": []} for t in _dicts(lake.query(f"""
        SELECT turn, reward, achievements, valid, done, ts, metadata FROM raw_turns
        WHERE session_id = {sid} ORDER BY turn
    """))}
    messages = _dicts(lake.query(f"""
        SELECT turn, idx_in_turn, role, left(content, {TRUNCATE_CHARS}) AS content, length(content) AS content_chars,
               content_is_parts, left(tool_calls, {TRUNCATE_CHARS * 4}) AS tool_calls,
               length(tool_calls) AS tool_calls_chars, tool_call_id, name, ts
        FROM raw_messages WHERE session_id = {sid} ORDER BY turn, idx_in_turn
    """))
    for idx, m in enumerate(messages):
        m["idx"] = idx
        m["repeat"] = False
        m["truncated"] = (m["content_chars"] or 0) > TRUNCATE_CHARS or (m["tool_calls_chars"] or 0) > TRUNCATE_CHARS * 4
        m["parts"] = _parts(m["content"]) if m["content_is_parts"] and not m["truncated"] else None
        m["calls"] = _calls(m["tool_calls"]) if m["tool_calls"] and not m["truncated"] else []
        turn = turns.setdefault(m["turn"], {"turn": m["turn"], "missing": True, "messages": []})
        turn["messages"].append(m)
    _mark_repeats(turns)
    rewards = _dicts(lake.query(f"""
        SELECT r.kind, r.objective, r.total_reward, r.achievements, r.label, r.score, r.source, r.reason, r.ts,
               r.event_id, r.kafka_partition, r.kafka_offset,
               r.event_id IN (SELECT event_id FROM latest_rewards WHERE session_id = {sid}
                              UNION ALL SELECT event_id FROM latest_judgments WHERE session_id = {sid}) AS in_effect
        FROM rewards r WHERE r.session_id = {sid}
        ORDER BY r.ts NULLS LAST, r.kafka_partition, r.kafka_offset
    """))
    ended = session.get("ended_at")
    for r in rewards:
        r["after_end_s"] = (r["ts"] - ended).total_seconds() if ended and r["ts"] else None
    for key in ("tools", "metadata"):
        session[key + "_pretty"] = _pretty_json(session.get(key))
    return {"session": session, "turns": [turns[k] for k in sorted(turns)], "rewards": rewards,
            "messages": len(messages)}


def message(lake: Any, session_id: str, turn: int, idx_in_turn: int) -> dict[str, Any] | None:
    found = _dicts(lake.query(f"""
        SELECT session_id, turn, idx_in_turn, role, content, content_is_parts, tool_calls, tool_call_id, name, ts
        FROM raw_messages WHERE session_id = {lit(session_id)} AND turn = {int(turn)} AND idx_in_turn = {int(idx_in_turn)}
    """))
    if not found:
        return None
    m = found[0]
    m["tool_calls_pretty"] = _pretty_json(m["tool_calls"])
    return m


def task_stats(lake: Any) -> list[dict[str, Any]]:
    """Every row of the `task_stats` view (one per task and objective), ordered by task."""
    return _dicts(lake.query("SELECT * FROM task_stats ORDER BY task_id, objective"))


def task_page(rows: list[dict[str, Any]], *, objective: str | None, sort: str, offset: int,
              limit: int) -> dict[str, Any]:
    """Filter, sort and cut the task rows (remembered per pinned versions, so paging is free)."""
    objectives = sorted({r["objective"] for r in rows})
    kept = [r for r in rows if objective is None or r["objective"] == objective]
    if sort != "task_id":  # numbers high to low, missing last; ties by task
        kept = sorted(kept, key=lambda r: (r[sort] is None, -(r[sort] or 0), r["task_id"], r["objective"]))
    return {"rows": kept[offset:offset + limit], "total": len(kept), "objectives": objectives}


def dead_letters(lake: Any, *, offset: int, limit: int, preview_bytes: int = 600) -> dict[str, Any]:
    total = lake.query("SELECT count(*) FROM raw_dead_letters").fetchone()[0]
    errors = lake.query("""
        SELECT split_part(error, ':', 1) AS kind, count(*) FROM raw_dead_letters GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 20
    """).fetchall()
    rows = _dicts(lake.query(f"""
        SELECT error, key[1:200] AS key, raw[1:{int(preview_bytes)}] AS raw, octet_length(raw) AS raw_bytes,
               received_at, kafka_topic, kafka_partition, kafka_offset
        FROM raw_dead_letters
        ORDER BY received_at DESC NULLS LAST, kafka_topic, kafka_partition, kafka_offset DESC
        LIMIT {int(limit)} OFFSET {int(offset)}
    """))
    for r in rows:
        r["preview"] = safe_preview(r["raw"])
        r["key_preview"] = safe_preview(r["key"])
        r["cut"] = (r["raw_bytes"] or 0) > len(r["raw"] or b"")
    return {"rows": rows, "total": int(total), "errors": errors}


def dead_letter(lake: Any, topic: str, partition: int, offset: int) -> dict[str, Any] | None:
    found = _dicts(lake.query(f"""
        SELECT error, key, raw, octet_length(raw) AS raw_bytes, received_at, kafka_topic, kafka_partition, kafka_offset
        FROM raw_dead_letters
        WHERE kafka_topic = {lit(topic)} AND kafka_partition = {int(partition)} AND kafka_offset = {int(offset)}
    """))
    if not found:
        return None
    r = found[0]
    r["preview"] = safe_preview(r["raw"])
    r["key_preview"] = safe_preview(r["key"])
    return r


def safe_preview(raw: bytes | None) -> str:
    """Raw bytes as text a person can read: UTF-8 where it decodes, \\xNN for the rest and for
    control characters (newlines and tabs kept)."""
    if raw is None:
        return ""
    text = bytes(raw).decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                   for c in text)


def _pretty_json(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _calls(text: str) -> list[dict[str, Any]]:
    """OpenAI tool calls with their arguments parsed where they are JSON."""
    try:
        calls = json.loads(text)
    except ValueError:
        return [{"id": None, "name": None, "arguments": text}]
    out = []
    for call in calls if isinstance(calls, list) else [calls]:
        fn = (call.get("function") or {}) if isinstance(call, dict) else {}
        args = fn.get("arguments") if isinstance(fn, dict) else None
        if isinstance(args, str):
            try:
                args = json.dumps(json.loads(args), indent=1, ensure_ascii=False)
            except ValueError:
                pass
        elif args is not None:
            args = json.dumps(args, indent=1, ensure_ascii=False)
        out.append({"id": call.get("id") if isinstance(call, dict) else None,
                    "name": fn.get("name") if isinstance(fn, dict) else None, "arguments": args})
    return out


def _parts(text: str | None) -> list[dict[str, Any]] | None:
    """A content parts list as (type, text) items; images and audio by reference only, never loaded."""
    try:
        parts = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(parts, list):
        return None
    out = []
    for p in parts:
        if not isinstance(p, dict):
            out.append({"type": "?", "text": json.dumps(p, ensure_ascii=False)})
        elif p.get("type") == "text":
            out.append({"type": "text", "text": str(p.get("text", ""))})
        else:
            ref = p.get(p.get("type", "")) or {k: v for k, v in p.items() if k != "type"}
            out.append({"type": str(p.get("type")), "text": json.dumps(ref, ensure_ascii=False)[:300]})
    return out


def _mark_repeats(turns: dict[int, dict[str, Any]]) -> None:
    """A system prompt identical to the previous one is shown folded."""
    last = None
    for k in sorted(turns):
        for m in turns[k]["messages"]:
            if m["role"] in ("system", "developer"):
                m["repeat"] = m["content"] == last and not m["truncated"]
                last = m["content"]
