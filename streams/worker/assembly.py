"""Session assembly: the small per-session state the worker keeps, and how each event updates it.

The state is a plain JSON-able dict kept in a Faust table keyed by session_id. Updating it is
idempotent under replay: every first-seen fact records the Kafka offset it came from, so the
same record read again (after a crash, the changelog may already hold its effect) is recognised
as "the first sighting again" and its rows are re-offered to the writer, whose offset check
decides, while a true duplicate (another offset) is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from schemas import Judgment, OutcomeReward, SessionEnd, SessionStart, Turn

__all__ = ["Fold", "fold_event", "new_state", "session_row", "session_status", "state_from_lake"]

REWARD_OBJECTIVE = "reward"
SESSION_END_STATUSES = ("terminated", "truncated", "error")


def new_state(session_id: str, partition: int, topic: str | None = None) -> dict[str, Any]:
    return {
        "sid": session_id,
        "topic": topic,
        "p": partition,
        "start": None,
        "end": None,
        "turns": {},  # turn number (str) -> offset of its first sighting
        "ev": {},  # reward/judgment event_id -> offset of its first sighting
        "reward": {},  # objective -> [total_reward, achievements, ts, offset] (latest)
        "judgment": None,  # [label, ts, offset] (latest)
        "step_reward": 0.0,
        "turn_ach": [],
        "first_ts": None,  # Kafka record timestamps (ms): deterministic under replay
        "last_ts": None,
        "end_ts": None,
        "last_offset": -1,
    }


@dataclass
class Fold:
    """What one event did: whether its rows should be offered to the writer, and the new state."""

    state: dict[str, Any]
    write_rows: bool = False
    changed: bool = False
    duplicate: bool = False
    notes: list[str] = field(default_factory=list)


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    # Shallow copies of the containers fold_event may change; cheaper than a deep copy per event.
    st = dict(state)
    for key in ("turns", "ev", "reward"):
        st[key] = dict(state[key])
    return st


def _ts_key(ts: datetime | None, record_ms: int) -> str:
    when = ts or datetime.fromtimestamp(record_ms / 1000, tz=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def fold_event(
    state: dict[str, Any] | None, event: Any, *, partition: int, offset: int, record_ms: int, topic: str | None = None
) -> Fold:
    """Apply one parsed event at (partition, offset) to a session's state; never mutates `state`."""
    st = new_state(event.session_id, partition, topic) if state is None else _copy(state)
    st["first_ts"] = record_ms if st["first_ts"] is None else min(st["first_ts"], record_ms)
    st["last_ts"] = record_ms if st["last_ts"] is None else max(st["last_ts"], record_ms)
    st["last_offset"] = max(st["last_offset"], offset)
    fold = Fold(state=st)

    if isinstance(event, Turn):
        key = str(event.turn)
        seen = st["turns"].get(key)
        if seen is None:
            st["turns"][key] = offset
            if event.reward is not None:
                st["step_reward"] += event.reward
            if event.achievements:
                st["turn_ach"] = sorted(set(st["turn_ach"]) | set(event.achievements))
            fold.write_rows = fold.changed = True
        elif seen == offset:
            fold.write_rows = True  # the first sighting, read again: the writer decides
        else:
            fold.duplicate = True
    elif isinstance(event, (OutcomeReward, Judgment)):
        seen = st["ev"].get(event.event_id)
        if seen is None:
            st["ev"][event.event_id] = offset
            ts = _ts_key(event.ts, record_ms)
            if isinstance(event, OutcomeReward):
                current = st["reward"].get(event.objective)
                if current is None or (ts, offset) >= (current[2], current[3]):
                    st["reward"][event.objective] = [event.total_reward, list(event.achievements), ts, offset]
            else:
                current = st["judgment"]
                if current is None or (ts, offset) >= (current[1], current[2]):
                    st["judgment"] = [event.label, ts, offset]
            fold.write_rows = fold.changed = True
        elif seen == offset:
            fold.write_rows = True
        else:
            fold.duplicate = True
    elif isinstance(event, SessionStart):
        if st["start"] is None:
            st["start"] = {
                "o": offset,
                "env_name": event.env_name,
                "policy_name": event.policy_name,
                "model": event.model,
                "task_id": event.task_id,
                "split": event.split,
                "seed": event.seed,
                "run_id": event.run_id,
                "tools": json.dumps(event.tools, separators=(",", ":")),
                "metadata": json.dumps(event.metadata, separators=(",", ":"), sort_keys=True),
                "ts": _ts_key(event.ts, record_ms),
            }
            fold.changed = True
        elif st["start"]["o"] != offset:
            fold.duplicate = True
    elif isinstance(event, SessionEnd):
        if st["end"] is None:
            st["end"] = {
                "o": offset,
                "status": event.status,
                "num_turns": event.num_turns,
                "ts": _ts_key(event.ts, record_ms),
            }
            st["end_ts"] = record_ms
            fold.changed = True
        elif st["end"]["o"] != offset:
            fold.duplicate = True
    return fold


def session_status(state: dict[str, Any], *, now_ms: int, reward_grace_s: float, idle_timeout_s: float) -> tuple[str, bool]:
    """(status, finalized) of a session as of `now_ms`."""
    end = state["end"]
    if end is None:
        idle = now_ms - (state["last_ts"] or now_ms) > idle_timeout_s * 1000
        return ("abandoned", True) if idle else ("open", False)
    has_reward = bool(state["reward"])
    grace_over = now_ms - (state["end_ts"] or now_ms) > reward_grace_s * 1000
    return end["status"], bool(has_reward or grace_over)


def _ms_to_dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def session_row(state: dict[str, Any], *, now_ms: int, reward_grace_s: float, idle_timeout_s: float) -> dict[str, Any]:
    """The `sessions` table row for a session state, as of `now_ms`."""
    start = state["start"] or {}
    end = state["end"] or {}
    status, finalized = session_status(
        state, now_ms=now_ms, reward_grace_s=reward_grace_s, idle_timeout_s=idle_timeout_s
    )
    reward = state["reward"].get(REWARD_OBJECTIVE)
    if reward is None and state["reward"]:
        reward = state["reward"][sorted(state["reward"])[0]]
    achievements = reward[1] if reward and reward[1] else state["turn_ach"]
    received = len(state["turns"])
    num_turns = end.get("num_turns")
    return {
        "session_id": state["sid"],
        "env_name": start.get("env_name"),
        "policy_name": start.get("policy_name"),
        "model": start.get("model"),
        "task_id": start.get("task_id"),
        "split": start.get("split"),
        "seed": start.get("seed"),
        "run_id": start.get("run_id"),
        "status": status,
        "finalized": finalized,
        "num_turns": num_turns,
        "turns_received": received,
        "missing_turns": None if num_turns is None else max(num_turns - received, 0),
        "started_at": datetime.fromisoformat(start["ts"]) if start.get("ts") else _ms_to_dt(state["first_ts"]),
        "ended_at": datetime.fromisoformat(end["ts"]) if end.get("ts") else None,
        "total_reward": reward[0] if reward else None,
        "step_reward_sum": state["step_reward"],
        "achievements": list(achievements),
        "achievements_count": len(achievements),
        "judgment": state["judgment"][0] if state["judgment"] else None,
        "tools": start.get("tools"),
        "metadata": start.get("metadata"),
        "last_event_at": _ms_to_dt(state["last_ts"]),
        "updated_at": _ms_to_dt(now_ms),
        "last_offset": state["last_offset"],
        "kafka_topic": state.get("topic"),
        "kafka_partition": state["p"],
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def state_from_lake(
    session: dict[str, Any] | None,
    turns: list[dict[str, Any]],
    rewards: list[dict[str, Any]],
    *,
    session_id: str,
    partition: int,
    topic: str | None = None,
) -> dict[str, Any]:
    """Rebuild a session's state from its lake rows: the `sessions` row, its turns and rewards.

    The lake is the truth; the worker's in-memory state is only a cache of open sessions. Offsets
    of the start and end records are not stored, so a replayed start/end counts as a duplicate,
    which writes no row either way.
    """
    st = new_state(session_id, partition, topic)
    for t in turns:
        st["turns"][str(t["turn"])] = t["kafka_offset"]
        if t.get("reward") is not None:
            st["step_reward"] += t["reward"]
    st["turn_ach"] = sorted({a for t in turns for a in (t.get("achievements") or [])})
    for r in sorted(rewards, key=lambda r: (_iso(r["ts"]) or "", r["kafka_offset"])):
        st["ev"][r["event_id"]] = r["kafka_offset"]
        entry_ts = _iso(r["ts"])
        if r["kind"] == "outcome_reward":
            st["reward"][r["objective"] or REWARD_OBJECTIVE] = [r["total_reward"], list(r.get("achievements") or []), entry_ts, r["kafka_offset"]]
        else:
            st["judgment"] = [r["label"], entry_ts, r["kafka_offset"]]
    offsets = [t["kafka_offset"] for t in turns] + [r["kafka_offset"] for r in rewards]
    if session is not None:
        if session.get("kafka_partition") is not None:
            st["p"] = session["kafka_partition"]
            st["topic"] = session.get("kafka_topic") or topic
        if session.get("tools") is not None:  # a session_start was folded
            st["start"] = {
                "o": -1,
                **{k: session.get(k) for k in ("env_name", "policy_name", "model", "task_id", "split", "seed", "run_id", "tools", "metadata")},
                "ts": _iso(session.get("started_at")),
            }
        if session.get("status") in SESSION_END_STATUSES:
            st["end"] = {"o": -1, "status": session["status"], "num_turns": session.get("num_turns"), "ts": _iso(session.get("ended_at"))}
            st["end_ts"] = _ms(session.get("ended_at")) or _ms(session.get("last_event_at"))
        st["first_ts"] = _ms(session.get("started_at"))
        st["last_ts"] = _ms(session.get("last_event_at"))
        offsets.append(session.get("last_offset") if session.get("last_offset") is not None else -1)
    st["last_offset"] = max(offsets, default=-1)
    return st
