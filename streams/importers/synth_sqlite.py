"""Read synth-ai tracing_v3 SQLite databases as v1 events (one session per session_traces row).

Messages are grouped into turns by timestep (turn_number, step_index); tool_use rows become
assistant tool_calls and tool_result rows role-`tool` messages; event_rewards are summed into
the turn reward (events.reward when a session has no event_rewards); outcome_rewards become
outcome_reward events. Session and event ids come from the trace's own ids.

The session_traces metadata keys that synth-ai's `filter` reads land where our filters look:
`task_split` (else `split`) -> split, `task_id`, `model`, `env_name`, `policy_name`, `seed`; each
numeric `judge_scores` entry becomes an outcome reward with objective `judge:<name>`; a session
with no message rows but metadata `prompt` and `completion` becomes one user/assistant turn.
A session whose rows hold bad data is skipped with the reason; the import goes on.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas import EventValidationError, OutcomeReward, SessionEnd, SessionStart, Turn
from streams.importers.common import (
    ROW_ERRORS,
    ImportedSession,
    loads_maybe,
    make_event,
    parse_ts,
    split_turns,
    stable_id,
)
from streams.importers.exceptions import ImportSourceError

__all__ = ["read_synth_sqlite", "count_synth_sessions"]

SOURCE = "synth_sqlite"
ROLES = {"system": "system", "user": "user", "assistant": "assistant", "developer": "developer"}
ACHIEVEMENT_REWARD_TYPES = {"achievement", "unique_achievement"}


def _connect(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    if not path.is_file():
        raise ImportSourceError(f"{path}: no such SQLite file")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        # Text that is not UTF-8 must not stop the import: it is kept as lone surrogates, which
        # the replay's validation refuses, so only the session holding it is skipped.
        conn.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    except sqlite3.DatabaseError as exc:
        raise ImportSourceError(f"{path}: not a readable SQLite database ({exc})") from exc
    if "session_traces" not in tables:
        conn.close()
        raise ImportSourceError(
            f"{path}: no session_traces table; expected a synth-ai tracing_v3 database (tables seen: "
            f"{', '.join(sorted(tables)) or 'none'})"
        )
    conn.execute("PRAGMA query_only = ON")
    return conn


def _rows(conn: sqlite3.Connection, table: str, session_id: str, order: list[str]) -> list[dict[str, Any]]:
    """Rows of one session, ordered by the first of `order`'s columns that the table has."""
    columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    if "session_id" not in columns:  # older tracing versions lack some tables
        return []
    keys = [c for c in order if c in columns] or ["rowid"]
    cur = conn.execute(f"SELECT * FROM {table} WHERE session_id = ? ORDER BY {', '.join(keys)}", (session_id,))
    return [dict(r) for r in cur]


def count_synth_sessions(path: str | Path) -> int:
    conn = _connect(path)
    try:
        return conn.execute("SELECT count(*) FROM session_traces").fetchone()[0]
    finally:
        conn.close()


def read_synth_sqlite(path: str | Path) -> Iterator[ImportedSession]:
    """Yield one ImportedSession per trace, in (created_at, session_id) order."""
    conn = _connect(path)
    try:
        ids = [r[0] for r in conn.execute("SELECT session_id FROM session_traces ORDER BY created_at, session_id")]
        for session_id in ids:
            try:
                trace = dict(conn.execute("SELECT * FROM session_traces WHERE session_id = ?", (session_id,)).fetchone())
                yield _session(conn, trace)
            except UnicodeError:
                yield ImportedSession(str(session_id), error="session id or its rows hold text that is not valid UTF-8")
            except (*ROW_ERRORS, sqlite3.Error) as exc:
                yield ImportedSession(str(session_id), error=str(exc) or type(exc).__name__)
    finally:
        conn.close()


def _as_dict(value: Any) -> dict[str, Any]:
    value = loads_maybe(value)
    return value if isinstance(value, dict) else {}


def _first(meta: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if meta.get(key) not in (None, ""):
            return meta[key]
    return None


def _seed(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _achievement_names(value: Any) -> list[str]:
    value = loads_maybe(value)
    if isinstance(value, dict):  # {"collect_wood": true, "place_table": 0}
        return [str(k) for k, v in value.items() if v]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str)]
    return []


def _session(conn: sqlite3.Connection, trace: dict[str, Any]) -> ImportedSession:
    sid = str(trace["session_id"])
    meta = _as_dict(trace.get("metadata"))
    # Row ids are insertion order, the order the tracer saw things happen.
    timesteps = _rows(conn, "session_timesteps", sid, ["turn_number", "step_index", "id"])
    messages = _rows(conn, "messages", sid, ["id"])
    events = _rows(conn, "events", sid, ["id"])
    event_rewards = _rows(conn, "event_rewards", sid, ["id"])
    outcomes = _rows(conn, "outcome_rewards", sid, ["id"])

    groups = _group_messages(timesteps, messages) or _metadata_pair(meta)
    step_of_message = {m["id"]: key for key, group in groups for m in group["rows"]}
    step_of_event = {e["id"]: e.get("timestep_id") for e in events}
    turn_keys = [key for key, _ in groups]
    rewards, achievements = _turn_rewards(event_rewards, events, timesteps, turn_keys, step_of_message, step_of_event)

    model = _first(meta, "model", "model_name") or _most_common(e.get("model_name") for e in events)
    created = parse_ts(trace.get("created_at"), "session_traces.created_at")
    out = [make_event(
        SessionStart, event_id=stable_id(SOURCE, sid, "start"), session_id=sid, ts=created,
        env_name=_first(meta, "env_name", "env", "environment"),
        policy_name=_first(meta, "policy_name", "policy"), model=model,
        task_id=None if _first(meta, "task_id") is None else str(_first(meta, "task_id")),
        split=_first(meta, "task_split", "split"), seed=_seed(_first(meta, "seed", "env_seed")),
        run_id=None if _first(meta, "run_id") is None else str(_first(meta, "run_id")),
        tools=[t for t in meta.get("tools") or [] if isinstance(t, dict)],
        metadata={"source": SOURCE, "trace_metadata": meta, "num_timesteps": trace.get("num_timesteps")},
    )]
    last_ts = created
    for n, (key, group) in enumerate(groups):
        ts = group["ts"] or last_ts
        last_ts = ts or last_ts
        out.append(make_event(
            Turn, event_id=stable_id(SOURCE, sid, "turn", n), session_id=sid, ts=ts, turn=n,
            messages=group["messages"], reward=rewards.get(key), achievements=achievements.get(key, []),
            done=n == len(groups) - 1, metadata={"source": SOURCE, **group["source"]},
        ))
    truncated = any(e.get("truncated") for e in events)
    status = meta.get("status") if meta.get("status") in ("terminated", "truncated", "error") else (
        "truncated" if truncated else "terminated")
    end_ts = max((t for t in (parse_ts(s.get("completed_at"), f"session_timesteps {s.get('id')} completed_at")
                              for s in timesteps) if t), default=last_ts)
    out.append(make_event(
        SessionEnd, event_id=stable_id(SOURCE, sid, "end"), session_id=sid, ts=end_ts,
        status=status, num_turns=len(groups), metadata={"source": SOURCE},
    ))
    for row in outcomes:
        reward_meta = _as_dict(row.get("reward_metadata"))
        out.append(make_event(
            OutcomeReward, event_id=stable_id(SOURCE, sid, "outcome", row["id"]), session_id=sid,
            ts=parse_ts(row.get("created_at"), f"outcome_rewards {row.get('id')} created_at"), total_reward=row["total_reward"],
            achievements=_achievement_names(reward_meta.get("achievements")), objective="reward", source="synth-ai",
            metadata={"source": SOURCE, "achievements_count": row.get("achievements_count"),
                      "total_steps": row.get("total_steps"), "reward_metadata": reward_meta},
        ))
    for name, score in _judge_scores(meta.get("judge_scores")):
        out.append(make_event(
            OutcomeReward, event_id=stable_id(SOURCE, sid, "judge", name), session_id=sid, ts=created,
            total_reward=score, objective=f"judge:{name}", source="synth-ai judge",
            metadata={"source": SOURCE, "judge": name},
        ))
    return ImportedSession(sid, out)


def _judge_scores(value: Any) -> list[tuple[str, float]]:
    """(name, score) of metadata.judge_scores; entries that are not numbers are left out (as synth-ai's filter fails them)."""
    value = loads_maybe(value)
    if not isinstance(value, dict):
        return []
    scores = []
    for name, raw in value.items():
        if isinstance(raw, bool) or raw is None or not str(name):
            continue
        try:
            score = float(raw)
        except (TypeError, ValueError):
            continue
        if math.isfinite(score):
            scores.append((str(name), score))
    return scores


def _metadata_pair(meta: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """synth-ai's fallback for sessions without message rows: metadata prompt + completion, one turn."""
    prompt, completion = meta.get("prompt"), meta.get("completion")
    if not prompt or not completion:
        return []
    messages = [{"role": "user", "content": _text(prompt)}, {"role": "assistant", "content": _text(completion)}]
    return [(("metadata", 0), {"rows": [], "messages": messages, "ts": None, "source": {"from": "metadata"}})]


def _most_common(values: Any) -> str | None:
    counts: dict[str, int] = defaultdict(int)
    for v in values:
        if v:
            counts[str(v)] += 1
    return max(counts, key=counts.__getitem__) if counts else None


def _group_messages(timesteps: list[dict[str, Any]], messages: list[dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
    """[(timestep id or a synthetic key, {rows, messages, ts, source})] in turn order."""
    by_step: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for m in messages:
        by_step[m.get("timestep_id")].append(m)
    known = {s["id"] for s in timesteps}
    if messages and all(m.get("timestep_id") in known for m in messages):
        groups = []
        for step in timesteps:
            rows = by_step.get(step["id"])
            if rows:
                source = {"step_id": step.get("step_id"), "turn_number": step.get("turn_number"),
                          "step_index": step.get("step_index")}
                started = parse_ts(step.get("started_at"), f"session_timesteps {step['id']} started_at")
                groups.append((step["id"], _group(rows, started, source)))
        return groups
    # Traces without timesteps on their messages: one turn per assistant reply, in time order.
    converted = _convert(messages)
    out = []
    pos = 0
    for i, turn in enumerate(split_turns([m for m, _ in converted])):
        rows = [row for _, row in converted[pos:pos + len(turn)]]
        pos += len(turn)
        out.append((("split", i), {"rows": rows, "messages": turn, "ts": _row_ts(rows), "source": {}}))
    return out


def _row_ts(rows: list[dict[str, Any]]) -> Any:
    for r in rows:
        # message_time is a counter, not a time
        ts = parse_ts(r.get("timestamp") or r.get("event_time"), f"message {r.get('id')} timestamp")
        if ts:
            return ts
    return None


def _group(rows: list[dict[str, Any]], started: Any, source: dict[str, Any]) -> dict[str, Any]:
    converted = _convert(rows)
    return {"rows": rows, "messages": [m for m, _ in converted], "ts": started or _row_ts(rows), "source": source}


def _convert(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """synth message rows -> OpenAI chat messages; tool_use rows merge into the assistant reply."""
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    open_calls: list[str] = []
    for row in rows:
        kind = row.get("message_type")
        meta = _as_dict(row.get("metadata"))
        content = loads_maybe(row.get("content"))
        if kind == "tool_use" or (kind == "assistant" and meta.get("is_tool_call")):
            calls = _tool_calls(content, row["id"])
            open_calls.extend(c["id"] for c in calls)
            prev = out[-1][0] if out else None
            if prev is not None and prev["role"] == "assistant" and not prev.get("tool_calls"):
                prev["tool_calls"] = calls
            else:
                out.append(({"role": "assistant", "content": None, "tool_calls": calls}, row))
        elif kind == "tool_result":
            call_id = None
            if isinstance(content, dict):
                call_id = _first(content, "tool_call_id", "call_id", "id")
                content = _first(content, "content", "result", "output")
            call_id = call_id or _first(meta, "tool_call_id", "call_id") or (open_calls.pop(0) if open_calls else None)
            if call_id in open_calls:
                open_calls.remove(call_id)
            msg = {"role": "tool", "content": _text(content)}
            if call_id:
                msg["tool_call_id"] = str(call_id)
            out.append((msg, row))
        elif kind in ROLES:
            out.append((_chat(ROLES[kind], content), row))
        else:
            raise EventValidationError(
                f"message {row['id']}: message_type {kind!r} is not one of system, user, assistant, tool_use, tool_result"
            )
    return out


def _chat(role: str, content: Any) -> dict[str, Any]:
    if isinstance(content, dict) and "content" in content:  # a stored OpenAI message
        msg = {"role": role, "content": content["content"]}
        if role == "assistant" and content.get("tool_calls"):
            msg["tool_calls"] = _tool_calls(content["tool_calls"], None)
        return msg
    if isinstance(content, list) and content and all(isinstance(p, dict) and "type" in p for p in content):
        return {"role": role, "content": content}
    return {"role": role, "content": _text(content)}


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False)


def _tool_calls(content: Any, row_id: Any) -> list[dict[str, Any]]:
    items = content if isinstance(content, list) else [content]
    calls = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("function"), dict):  # already OpenAI-shaped
            fn = item["function"]
            name, args, call_id = fn.get("name"), fn.get("arguments", "{}"), item.get("id")
        elif isinstance(item, dict):
            name = _first(item, "tool_name", "name", "tool")
            args = _first(item, "arguments", "args", "input", "parameters")
            call_id = _first(item, "id", "call_id", "tool_call_id")
        else:
            raise EventValidationError(f"message {row_id}: tool_use content {str(item)[:60]!r} names no tool")
        if not name:
            raise EventValidationError(f"message {row_id}: tool_use content {str(item)[:60]!r} names no tool")
        if not isinstance(args, str):
            args = json.dumps(args if args is not None else {}, sort_keys=True, separators=(",", ":"))
        calls.append({"id": str(call_id or f"call_{row_id}_{i}"), "type": "function",
                      "function": {"name": str(name), "arguments": args}})
    return calls


def _turn_rewards(event_rewards, events, timesteps, turn_keys, step_of_message, step_of_event):
    """Reward and achievements per turn key: event_rewards summed, else events.reward summed."""
    keys = set(turn_keys)
    by_turn_number = {s.get("turn_number"): s["id"] for s in timesteps if s["id"] in keys}
    rewards: dict[Any, float] = defaultdict(float)
    achievements: dict[Any, list[str]] = defaultdict(list)

    def key_for(row: dict[str, Any]) -> Any:
        if row.get("message_id") in step_of_message:
            return step_of_message[row["message_id"]]
        if step_of_event.get(row.get("event_id")) in keys:
            return step_of_event[row["event_id"]]
        if row.get("timestep_id") in keys:
            return row["timestep_id"]
        return by_turn_number.get(row.get("turn_number"))

    if event_rewards:
        for row in event_rewards:
            key = key_for(row)
            if key is None:
                continue
            rewards[key] += float(row.get("reward_value") or 0.0)
            if row.get("reward_type") in ACHIEVEMENT_REWARD_TYPES and row.get("key"):
                achievements[key].append(str(row["key"]))
    else:
        for row in events:
            key = key_for(row)
            if key is not None and row.get("reward") is not None:
                rewards[key] += float(row["reward"])
    return dict(rewards), dict(achievements)
