"""What each page reads: small SQL over the views of a pinned `lake.duck.Lake`, as plain dicts.

User values reach SQL only as bound parameters or through lake.filters (whose literals are
quoted); column names come from fixed lists.
"""

from __future__ import annotations

import json
from typing import Any

from lake.filters import SnapshotSpec, session_predicates

__all__ = [
    "SESSION_SORTS", "TASK_SORTS", "choices", "dead_letters", "list_sessions", "message", "session_detail",
    "task_stats",
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
TASK_SORTS = {
    "task_id": "task_id, objective",
    "n": "n DESC, task_id",
    "mean": "mean DESC, task_id",
    "std": "std DESC, task_id",
    "success_rate": "success_rate DESC, task_id",
}


def _dicts(result: Any) -> list[dict[str, Any]]:
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row)) for row in result.fetchall()]


def _where(spec: SnapshotSpec) -> str:
    return " AND ".join(f"({p})" for _, p in session_predicates(spec)) or "TRUE"


def list_sessions(lake: Any, spec: SnapshotSpec, *, sort: str, offset: int, limit: int) -> dict[str, Any]:
    """One page of the sessions the filters keep, with the total and matched counts by status."""
    where = _where(spec)
    by_status = lake.query(f"""
        SELECT coalesce(s.status, '(none)') AS status, count(*) AS total,
               count(*) FILTER (WHERE {where}) AS matched
        FROM sessions s GROUP BY ALL ORDER BY matched DESC, total DESC, status
    """).fetchall()
    rows = _dicts(lake.query(f"""
        SELECT s.session_id, s.env_name, s.policy_name, s.model, s.run_id, s.task_id, s.split, s.status,
               coalesce(s.num_turns, s.turns_received) AS turns, s.total_reward, s.achievements_count,
               s.judgment, s.started_at
        FROM sessions s WHERE {where}
        ORDER BY {SESSION_SORTS[sort]}, s.session_id
        LIMIT {int(limit)} OFFSET {int(offset)}
    """))
    return {
        "rows": rows,
        "total": sum(r[1] for r in by_status),
        "matched": sum(r[2] for r in by_status),
        "by_status": [(status, matched) for status, _, matched in by_status if matched],
    }


def choices(lake: Any, limit: int = 200) -> dict[str, list[str]]:
    """Distinct values of the filterable columns, for the form's suggestions."""
    cols = ("split", "task_id", "model", "run_id", "status", "judgment", "env_name", "policy_name")
    row = lake.query(
        "SELECT " + ", ".join(f"list(DISTINCT {c} ORDER BY {c})[1:{limit}]" for c in cols) + " FROM sessions"
    ).fetchone()
    out = {c: [v for v in (values or []) if v is not None] for c, values in zip(cols, row)}
    out["achievement"] = [r[0] for r in lake.query(f"""
        SELECT DISTINCT a FROM (SELECT unnest(achievements) AS a FROM sessions) WHERE a IS NOT NULL
        ORDER BY a LIMIT {int(limit)}
    """).fetchall()]
    return out


def session_detail(lake: Any, session_id: str) -> dict[str, Any] | None:
    """Everything about one session: its row, turns with their messages, rewards as received."""
    found = _dicts(lake.query("SELECT * FROM sessions WHERE session_id = $1", [session_id]))
    if not found:
        return None
    session = found[0]
    turns = {t["turn"]: {**t, "messages": []} for t in _dicts(lake.query("""
        SELECT turn, reward, achievements, valid, done, ts, metadata FROM raw_turns
        WHERE session_id = $1 ORDER BY turn
    """, [session_id]))}
    messages = _dicts(lake.query(f"""
        SELECT turn, idx_in_turn, role, left(content, {TRUNCATE_CHARS}) AS content, length(content) AS content_chars,
               content_is_parts, left(tool_calls, {TRUNCATE_CHARS * 4}) AS tool_calls,
               length(tool_calls) AS tool_calls_chars, tool_call_id, name, ts
        FROM raw_messages WHERE session_id = $1 ORDER BY turn, idx_in_turn
    """, [session_id]))
    for idx, m in enumerate(messages):
        m["idx"] = idx
        m["repeat"] = False
        m["truncated"] = (m["content_chars"] or 0) > TRUNCATE_CHARS or (m["tool_calls_chars"] or 0) > TRUNCATE_CHARS * 4
        m["parts"] = _parts(m["content"]) if m["content_is_parts"] and not m["truncated"] else None
        m["calls"] = _calls(m["tool_calls"]) if m["tool_calls"] and not m["truncated"] else []
        turn = turns.setdefault(m["turn"], {"turn": m["turn"], "missing": True, "messages": []})
        turn["messages"].append(m)
    _mark_repeats(turns)
    rewards = _dicts(lake.query("""
        SELECT r.kind, r.objective, r.total_reward, r.achievements, r.label, r.score, r.source, r.reason, r.ts,
               r.event_id, r.kafka_partition, r.kafka_offset,
               r.event_id IN (SELECT event_id FROM latest_rewards WHERE session_id = $1
                              UNION ALL SELECT event_id FROM latest_judgments WHERE session_id = $1) AS in_effect
        FROM rewards r WHERE r.session_id = $1
        ORDER BY r.ts NULLS LAST, r.kafka_partition, r.kafka_offset
    """, [session_id]))
    ended = session.get("ended_at")
    for r in rewards:
        r["after_end_s"] = (r["ts"] - ended).total_seconds() if ended and r["ts"] else None
    for key in ("tools", "metadata"):
        session[key + "_pretty"] = _pretty_json(session.get(key))
    return {"session": session, "turns": [turns[k] for k in sorted(turns)], "rewards": rewards,
            "messages": len(messages)}


def message(lake: Any, session_id: str, turn: int, idx_in_turn: int) -> dict[str, Any] | None:
    found = _dicts(lake.query("""
        SELECT session_id, turn, idx_in_turn, role, content, content_is_parts, tool_calls, tool_call_id, name, ts
        FROM raw_messages WHERE session_id = $1 AND turn = $2 AND idx_in_turn = $3
    """, [session_id, int(turn), int(idx_in_turn)]))
    if not found:
        return None
    m = found[0]
    m["tool_calls_pretty"] = _pretty_json(m["tool_calls"])
    return m


def task_stats(lake: Any, *, objective: str | None, sort: str, offset: int, limit: int) -> dict[str, Any]:
    where, params = ("objective = $1", [objective]) if objective else ("TRUE", None)
    total = lake.query(f"SELECT count(*) FROM task_stats WHERE {where}", params).fetchone()[0]
    rows = _dicts(lake.query(f"""
        SELECT * FROM task_stats WHERE {where} ORDER BY {TASK_SORTS[sort]}, objective
        LIMIT {int(limit)} OFFSET {int(offset)}
    """, params))
    objectives = [r[0] for r in lake.query("SELECT DISTINCT objective FROM task_stats ORDER BY 1").fetchall()]
    return {"rows": rows, "total": int(total), "objectives": objectives}


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
    found = _dicts(lake.query("""
        SELECT error, key, raw, octet_length(raw) AS raw_bytes, received_at, kafka_topic, kafka_partition, kafka_offset
        FROM raw_dead_letters WHERE kafka_topic = $1 AND kafka_partition = $2 AND kafka_offset = $3
    """, [topic, int(partition), int(offset)]))
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
