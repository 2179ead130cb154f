"""The synth-ai way, as a baseline for bench.snapshot: tracing_v3 SQLite tables, one messages query
per session, json.dumps per example.

`python -m bench.sqlite_baseline build --db traces.db` is called by bench.snapshot with the same
sessions it writes to the lake; `python -m bench.sqlite_baseline filter --db traces.db --out
F.jsonl --min-reward 1 --splits train` is what gets timed.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Iterable
from typing import Any

# The tracing_v3 tables the filter reads (a subset of synth-ai's schema, same names and columns).
SCHEMA = """
CREATE TABLE session_traces (session_id TEXT PRIMARY KEY, created_at TIMESTAMP, num_timesteps INTEGER,
    num_events INTEGER, num_messages INTEGER, metadata TEXT);
CREATE TABLE session_timesteps (id INTEGER PRIMARY KEY, session_id TEXT, step_id TEXT, step_index INTEGER,
    turn_number INTEGER, started_at TIMESTAMP, completed_at TIMESTAMP, num_events INTEGER, num_messages INTEGER,
    step_metadata TEXT);
CREATE TABLE messages (id INTEGER PRIMARY KEY, session_id TEXT, timestep_id INTEGER, message_type TEXT
    CHECK (message_type IN ('user', 'assistant', 'system', 'tool_use', 'tool_result')),
    content TEXT, timestamp TIMESTAMP, event_time REAL, message_time INTEGER, metadata TEXT);
CREATE TABLE outcome_rewards (id INTEGER PRIMARY KEY, session_id TEXT, total_reward REAL,
    achievements_count INTEGER, total_steps INTEGER, created_at TIMESTAMP, reward_metadata TEXT);
CREATE INDEX idx_messages_session ON messages (session_id);
CREATE INDEX idx_timesteps_session ON session_timesteps (session_id);
CREATE INDEX idx_outcome_session ON outcome_rewards (session_id);
"""
TYPES = {"system": "system", "user": "user", "assistant": "assistant", "tool": "tool_result"}
ROLES = {"system": "system", "user": "user", "assistant": "assistant", "tool_result": "tool", "tool_use": "assistant"}


def create(db: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db)
    conn.executescript("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;" + SCHEMA)
    return conn


def insert_sessions(conn: sqlite3.Connection, sessions: Iterable[Any]) -> int:
    """Write synthetic sessions (streams.devtools.synthetic) the way the tracer stores them; returns messages."""
    traces, steps, msgs, outcomes = [], [], [], []
    n = 0
    step_id = conn.execute("SELECT coalesce(max(id), 0) FROM session_timesteps").fetchone()[0]
    for sess in sessions:
        start = next(e for e in sess.events if e["type"] == "session_start")
        meta = {k: start.get(k) for k in ("env_name", "policy_name", "model", "task_id", "split", "seed", "run_id")}
        reward = next(e for e in sess.events if e["type"] == "outcome_reward")
        turns = [e for e in sess.events if e["type"] == "turn"]
        traces.append((sess.session_id, start["ts"], len(turns), len(sess.events), sess.num_messages, json.dumps(meta)))
        for t in turns:
            step_id += 1
            steps.append((step_id, sess.session_id, f"turn-{t['turn']}", t["turn"], t["turn"], t["ts"], t["ts"], 1,
                          len(t["messages"]), json.dumps({"reward": t["reward"], "achievements": t["achievements"]})))
            for i, m in enumerate(t["messages"]):
                msgs.append((sess.session_id, step_id, TYPES[m["role"]], json.dumps(m), t["ts"], t["turn"] + i / 10,
                             t["turn"] * 10 + i, "{}"))
                n += 1
        outcomes.append((sess.session_id, reward["total_reward"], len(reward["achievements"]), len(turns),
                         reward["ts"], json.dumps({"achievements": reward["achievements"]})))
    with conn:
        conn.executemany("INSERT INTO session_traces VALUES (?, ?, ?, ?, ?, ?)", traces)
        conn.executemany("INSERT INTO session_timesteps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", steps)
        conn.executemany("INSERT INTO messages (session_id, timestep_id, message_type, content, timestamp, event_time, "
                         "message_time, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", msgs)
        conn.executemany("INSERT INTO outcome_rewards (session_id, total_reward, achievements_count, total_steps, "
                         "created_at, reward_metadata) VALUES (?, ?, ?, ?, ?, ?)", outcomes)
    return n


def filter_to_jsonl(db: str, out: str, *, min_reward: float | None, splits: list[str]) -> dict[str, int]:
    """synth-ai's filter loop: select sessions, then per session query its messages and dump a line."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    sessions = conn.execute(
        "SELECT st.session_id, st.created_at, st.metadata, o.total_reward, o.achievements_count "
        "FROM session_traces st LEFT JOIN outcome_rewards o ON o.session_id = st.session_id "
        "ORDER BY st.created_at, st.session_id"
    ).fetchall()
    kept = lines = messages = 0
    with open(out, "w") as fh:
        for sid, created, meta_text, reward, ach in sessions:
            meta = json.loads(meta_text or "{}")
            if min_reward is not None and (reward is None or reward < min_reward):
                continue
            if splits and meta.get("split") not in splits:
                continue
            kept += 1
            rows = conn.execute(
                "SELECT message_type, content, timestamp FROM messages WHERE session_id = ? "
                "ORDER BY timestamp ASC, message_time ASC", (sid,)
            ).fetchall()
            out_msgs = []
            for mtype, content, _ in rows:
                m = json.loads(content)
                m["role"] = ROLES[mtype]
                out_msgs.append(m)
            record = {"messages": out_msgs, "metadata": {"session_id": sid, **meta, "total_reward": reward,
                                                         "achievements_count": ach, "created_at": created}}
            fh.write(json.dumps(record) + "\n")
            lines += 1
            messages += len(out_msgs)
    conn.close()
    return {"sessions_kept": kept, "examples": lines, "messages": messages}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sqlite_baseline", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("filter")
    f.add_argument("--db", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--min-reward", type=float, default=None)
    f.add_argument("--splits", default="")
    args = p.parse_args(argv)
    result = filter_to_jsonl(args.db, args.out, min_reward=args.min_reward,
                             splits=[s for s in args.splits.split(",") if s])
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
