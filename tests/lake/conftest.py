"""Temp lakes built from wire-format events, written with the worker's own LakeWriter."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from lake.tables import DEAD_LETTERS, MESSAGES, REWARDS, SCHEMAS, SESSIONS, TURNS
from lake.writer import LakeWriter
from schemas import parse_event

TOPIC = "rollout-events"
BASE_TS = datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)


def build_rows(events: list[Any], *, first_offset: int) -> dict[str, list[dict[str, Any]]]:
    """Table rows for one worker batch of events (partition 0, offsets from first_offset).

    Stand-in for streams/rows.py: swap this body for the worker's pure function when it lands.
    Sessions rows are only written for sessions that got a start/turn/end in this batch, so a
    later batch holding just an outcome_reward behaves like a reward after finalization.
    """
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in (SESSIONS, TURNS, MESSAGES, REWARDS, DEAD_LETTERS)}
    state: dict[str, dict[str, Any]] = {}
    seen_turns: set[tuple[str, int]] = set()
    for i, raw in enumerate(events):
        offset = first_offset + i
        src = {"kafka_topic": TOPIC, "kafka_partition": 0, "kafka_offset": offset}
        if isinstance(raw, (bytes, str)):
            try:
                ev = parse_event(raw)
            except ValueError as exc:
                data = raw.encode() if isinstance(raw, str) else raw
                rows[DEAD_LETTERS].append(
                    {"error": str(exc), "key": None, "raw": data, "received_at": BASE_TS, **src}
                )
                continue
        else:
            ev = parse_event(raw.model_dump(mode="json") if hasattr(raw, "model_dump") else raw)
        ts = ev.ts or BASE_TS + timedelta(seconds=offset)
        meta = json.dumps(ev.metadata, sort_keys=True)
        if ev.type in ("outcome_reward", "judgment"):
            common = {"session_id": ev.session_id, "kind": ev.type, "event_id": ev.event_id,
                      "source": ev.source, "ts": ts, "metadata": meta, **src}
            if ev.type == "outcome_reward":
                rows[REWARDS].append({**common, "objective": ev.objective, "total_reward": ev.total_reward,
                                      "achievements": list(ev.achievements)})
            else:
                rows[REWARDS].append({**common, "label": ev.label, "score": ev.score, "reason": ev.reason})
            s = state.get(ev.session_id)
            if s is not None:
                if ev.type == "outcome_reward" and ev.objective == "reward":
                    s["total_reward"] = ev.total_reward
                    s["achievements"] = list(ev.achievements)
                elif ev.type == "judgment":
                    s["judgment"] = ev.label
                s["last_offset"] = offset
            continue
        s = state.setdefault(ev.session_id, {
            "session_id": ev.session_id, "status": "open", "finalized": False, "achievements": [],
            "turns": set(), "tools": "[]", "metadata": "{}", "last_offset": offset,
        })
        s["last_offset"] = offset
        s["last_event_at"] = ts
        if ev.type == "session_start":
            for key in ("env_name", "policy_name", "model", "task_id", "split", "seed", "run_id"):
                s[key] = getattr(ev, key)
            s["tools"] = json.dumps(ev.tools, sort_keys=True)
            s["metadata"] = meta
            s["started_at"] = ts
        elif ev.type == "session_end":
            s["status"], s["finalized"], s["num_turns"], s["ended_at"] = ev.status, True, ev.num_turns, ts
        elif ev.type == "turn":
            if (ev.session_id, ev.turn) in seen_turns:
                continue
            seen_turns.add((ev.session_id, ev.turn))
            s["turns"].add(ev.turn)
            s["step_reward_sum"] = (s.get("step_reward_sum") or 0.0) + (ev.reward or 0.0)
            rows[TURNS].append({
                "session_id": ev.session_id, "turn": ev.turn, "reward": ev.reward,
                "achievements": list(ev.achievements), "valid": ev.valid, "done": ev.done,
                "num_messages": len(ev.messages), "ts": ts, "event_id": ev.event_id,
                "metadata": meta, **src,
            })
            for j, msg in enumerate(ev.messages):
                parts = isinstance(msg.content, list)
                rows[MESSAGES].append({
                    "session_id": ev.session_id, "turn": ev.turn, "idx_in_turn": j, "role": msg.role,
                    "content": json.dumps(msg.content) if parts else msg.content,
                    "content_is_parts": parts,
                    "tool_calls": json.dumps([c.model_dump(mode="json") for c in msg.tool_calls])
                    if msg.tool_calls is not None else None,
                    "tool_call_id": msg.tool_call_id, "name": msg.name, "ts": ts,
                    "event_id": ev.event_id, **src,
                })
    for s in state.values():
        turns = s.pop("turns")
        declared = s.get("num_turns")
        expected = declared if declared is not None else (max(turns) + 1 if turns else 0)
        s["turns_received"] = len(turns)
        s["missing_turns"] = max(expected - len(turns), 0)
        s["achievements_count"] = len(s["achievements"])
        s["updated_at"] = s.get("last_event_at")
        rows[SESSIONS].append(s)
    return rows


@pytest.fixture
def lake_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """Writes wire events (models, dicts or raw bytes) to a lake; returns the lake URI.

    Each call is one worker batch; pass `lake=` to append a later batch to the same lake.
    """
    next_offset: dict[str, int] = {}

    def make(events: Iterable[Any], *, lake: str | None = None) -> str:
        uri = lake or str(tmp_path_factory.mktemp("lake"))
        events = list(events)
        first = next_offset.get(uri, 0)
        next_offset[uri] = first + len(events)
        writer = LakeWriter(uri)
        writer.ensure_tables()
        offsets = {(TOPIC, 0): first + len(events) - 1} if events else {}
        for table, table_rows in build_rows(events, first_offset=first).items():
            if not table_rows:
                continue
            if table == SESSIONS:
                writer.upsert_sessions(pa.Table.from_pylist(table_rows, schema=SCHEMAS[SESSIONS]))
            else:
                writer.write_rows(table, table_rows, offsets=offsets)
        return uri

    return make


def session_events(
    sid: str,
    *,
    turns: int = 2,
    reward: float | None = 1.0,
    achievements: Iterable[str] = (),
    status: str | None = "terminated",
    task_id: str | None = None,
    split: str = "train",
    model: str = "gpt-4o-mini",
    env: str = "crafter",
    policy: str = "react",
    seed: int = 0,
    invalid: Iterable[int] = (),
    skip_turns: Iterable[int] = (),
    started: datetime | None = None,
    system: str = "You are playing Crafter.",
    tools: bool = True,
) -> list[dict[str, Any]]:
    """One crafter-like session: start, `turns` turns (system, user, assistant tool call, tool)."""
    t0 = started or BASE_TS
    ev: list[dict[str, Any]] = [{
        "schema_version": 1, "type": "session_start", "event_id": f"{sid}-start", "session_id": sid,
        "ts": t0.isoformat(), "env_name": env, "policy_name": policy, "model": model,
        "task_id": task_id or f"task-{sid}", "split": split, "seed": seed, "run_id": "run-1",
        "tools": [{"type": "function", "function": {"name": "act", "description": "Act in the world",
                   "parameters": {"type": "object", "properties": {"actions": {"type": "array",
                   "items": {"type": "string"}}}}}}] if tools else [],
        "metadata": {},
    }]
    for t in range(turns):
        if t in set(skip_turns):
            continue
        ev.append({
            "schema_version": 1, "type": "turn", "event_id": f"{sid}-t{t}", "session_id": sid,
            "ts": (t0 + timedelta(seconds=t + 1)).isoformat(), "turn": t,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": f"{sid} observation {t}"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": f"c{t}", "type": "function",
                 "function": {"name": "act", "arguments": json.dumps({"actions": [f"move_{t}"]})}}]},
                {"role": "tool", "tool_call_id": f"c{t}", "content": f"ok {t}"},
            ],
            "reward": 0.5, "achievements": [], "valid": t not in set(invalid), "done": t == turns - 1,
            "metadata": {},
        })
    if status is not None:
        ev.append({"schema_version": 1, "type": "session_end", "event_id": f"{sid}-end", "session_id": sid,
                   "ts": (t0 + timedelta(seconds=turns + 1)).isoformat(), "status": status, "num_turns": turns,
                   "metadata": {}})
    if reward is not None:
        ev.append(reward_event(sid, reward, achievements, ts=t0 + timedelta(seconds=turns + 2)))
    return ev


def reward_event(sid: str, reward: float, achievements: Iterable[str] = (), *, ts: datetime | None = None,
                 objective: str = "reward", event_id: str | None = None) -> dict[str, Any]:
    return {"schema_version": 1, "type": "outcome_reward", "event_id": event_id or f"{sid}-r-{objective}-{reward}",
            "session_id": sid, "ts": (ts or BASE_TS + timedelta(hours=1)).isoformat(), "total_reward": reward,
            "achievements": list(achievements), "objective": objective, "source": "env", "metadata": {}}


def judgment_event(sid: str, label: str, *, ts: datetime | None = None, event_id: str | None = None) -> dict[str, Any]:
    return {"schema_version": 1, "type": "judgment", "event_id": event_id or f"{sid}-j-{label}",
            "session_id": sid, "ts": (ts or BASE_TS + timedelta(hours=1)).isoformat(), "label": label,
            "source": "reviewer", "metadata": {}}
