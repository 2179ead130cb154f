"""Session assembly: the small per-session state the worker keeps, and how each event updates it.

A `SessionState` lives in the worker's open-sessions cache, keyed by session_id. Updating it is
idempotent under replay: every first-seen fact records the Kafka offset it came from, so the
same record read again (a restarted worker replaying records the lake already holds, the guard
seeking back over a hole) is recognised as "the first sighting again" and its rows are re-offered to the writer,
whose offset check decides, while a true duplicate (another offset) is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from schemas import Judgment, OutcomeReward, SessionEnd, SessionStart, Turn

__all__ = [
    "EndInfo", "Fold", "LatestJudgment", "LatestReward", "SessionState", "StartInfo",
    "fold_event", "session_row", "session_status", "state_from_lake",
]

REWARD_OBJECTIVE = "reward"
SESSION_END_STATUSES = ("terminated", "truncated", "error")


class StartInfo(NamedTuple):
    """What the session_start said, as the `sessions` row stores it."""

    offset: int  # Kafka offset of the session_start folded; -1 when read back from the lake
    env_name: str | None
    policy_name: str | None
    model: str | None
    task_id: str | None
    split: str | None
    seed: int | None
    run_id: str | None
    tools: str | None  # JSON
    metadata: str | None  # JSON, keys sorted
    ts: str | None  # ISO 8601, UTC


class EndInfo(NamedTuple):
    """What the session_end said."""

    offset: int  # Kafka offset of the session_end folded; -1 when read back from the lake
    status: str
    num_turns: int | None
    ts: str | None  # ISO 8601, UTC


class LatestReward(NamedTuple):
    """The latest outcome_reward of one objective (by event ts, then offset)."""

    total_reward: float | None
    achievements: tuple[str, ...]
    ts: str | None
    offset: int


class LatestJudgment(NamedTuple):
    """The latest judgment (by event ts, then offset)."""

    label: str | None
    ts: str | None
    offset: int


_NO_START = StartInfo(-1, None, None, None, None, None, None, None, None, None, None)
_NO_END = EndInfo(-1, None, None, None)  # type: ignore[arg-type]


@dataclass(slots=True)
class SessionState:
    """One session as far as the worker has folded it; message lists never enter it.

    Treated as a value: `fold_event` returns a new state and replaces a container (dict, list)
    rather than changing it, so a state handed out is never changed under its holder.
    """

    session_id: str
    partition: int
    topic: str | None = None
    start: StartInfo | None = None
    end: EndInfo | None = None
    turn_offsets: dict[int, int] = field(default_factory=dict)  # turn -> offset of its first sighting
    # event_id of each outcome_reward and judgment -> offset of its first sighting
    reward_event_offsets: dict[str, int] = field(default_factory=dict)
    rewards: dict[str, LatestReward] = field(default_factory=dict)  # objective -> its latest reward
    judgment: LatestJudgment | None = None
    step_reward_sum: float = 0.0  # sum of the turns' rewards
    turn_achievements: list[str] = field(default_factory=list)  # union of the turns' achievements, sorted
    # Kafka record timestamps (ms), not event ts: deterministic under replay.
    first_record_ms: int | None = None
    last_record_ms: int | None = None
    end_record_ms: int | None = None  # of the session_end
    last_offset: int = -1  # highest Kafka offset folded


@dataclass(slots=True)
class Fold:
    """What one event did: whether its rows should be offered to the writer, and the new state."""

    state: SessionState
    write_rows: bool = False
    changed: bool = False
    duplicate: bool = False


def _copy(s: SessionState) -> SessionState:
    # Shallow: fold_event replaces the containers it changes.
    return SessionState(
        s.session_id, s.partition, s.topic, s.start, s.end, s.turn_offsets, s.reward_event_offsets, s.rewards,
        s.judgment, s.step_reward_sum, s.turn_achievements, s.first_record_ms, s.last_record_ms, s.end_record_ms,
        s.last_offset,
    )


def _utc_iso(ts: datetime | None, record_ms: int) -> str:
    when = ts or datetime.fromtimestamp(record_ms / 1000, tz=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def fold_event(
    state: SessionState | None,
    event: SessionStart | Turn | SessionEnd | OutcomeReward | Judgment,
    *,
    partition: int,
    offset: int,
    record_ms: int,
    topic: str | None = None,
) -> Fold:
    """Apply one parsed event at (partition, offset) to a session's state; never mutates `state`."""
    if state is None:
        st = SessionState(event.session_id, partition, topic, first_record_ms=record_ms, last_record_ms=record_ms)
    else:
        st = _copy(state)
        if st.first_record_ms is None or record_ms < st.first_record_ms:
            st.first_record_ms = record_ms
        if st.last_record_ms is None or record_ms > st.last_record_ms:
            st.last_record_ms = record_ms
    if offset > st.last_offset:
        st.last_offset = offset
    fold = Fold(st)

    if isinstance(event, Turn):
        seen = st.turn_offsets.get(event.turn)
        if seen is None:
            turn_offsets = dict(st.turn_offsets)
            turn_offsets[event.turn] = offset
            st.turn_offsets = turn_offsets
            if event.reward is not None:
                st.step_reward_sum += event.reward
            if event.achievements:
                st.turn_achievements = sorted(set(st.turn_achievements).union(event.achievements))
            fold.write_rows = fold.changed = True
        elif seen == offset:
            fold.write_rows = True  # the first sighting, read again: the writer decides
        else:
            fold.duplicate = True
    elif isinstance(event, (OutcomeReward, Judgment)):
        seen = st.reward_event_offsets.get(event.event_id)
        if seen is None:
            event_offsets = dict(st.reward_event_offsets)
            event_offsets[event.event_id] = offset
            st.reward_event_offsets = event_offsets
            ts = _utc_iso(event.ts, record_ms)
            if isinstance(event, OutcomeReward):
                current = st.rewards.get(event.objective)
                if current is None or (ts, offset) >= (current.ts, current.offset):
                    rewards = dict(st.rewards)
                    rewards[event.objective] = LatestReward(event.total_reward, tuple(event.achievements), ts, offset)
                    st.rewards = rewards
            else:
                current_j = st.judgment
                if current_j is None or (ts, offset) >= (current_j.ts, current_j.offset):
                    st.judgment = LatestJudgment(event.label, ts, offset)
            fold.write_rows = fold.changed = True
        elif seen == offset:
            fold.write_rows = True
        else:
            fold.duplicate = True
    elif isinstance(event, SessionStart):
        if st.start is None:
            st.start = StartInfo(
                offset=offset,
                env_name=event.env_name,
                policy_name=event.policy_name,
                model=event.model,
                task_id=event.task_id,
                split=event.split,
                seed=event.seed,
                run_id=event.run_id,
                tools=json.dumps(event.tools, separators=(",", ":")),
                metadata=json.dumps(event.metadata, separators=(",", ":"), sort_keys=True),
                ts=_utc_iso(event.ts, record_ms),
            )
            fold.changed = True
        elif st.start.offset != offset:
            fold.duplicate = True
    elif isinstance(event, SessionEnd):
        if st.end is None:
            st.end = EndInfo(offset, event.status, event.num_turns, _utc_iso(event.ts, record_ms))
            st.end_record_ms = record_ms
            fold.changed = True
        elif st.end.offset != offset:
            fold.duplicate = True
    return fold


def session_status(state: SessionState, *, now_ms: int, reward_grace_s: float, idle_timeout_s: float) -> tuple[str, bool]:
    """(status, finalized) of a session as of `now_ms`."""
    end = state.end
    if end is None:
        idle = now_ms - (state.last_record_ms or now_ms) > idle_timeout_s * 1000
        return ("abandoned", True) if idle else ("open", False)
    grace_over = now_ms - (state.end_record_ms or now_ms) > reward_grace_s * 1000
    return end.status, bool(state.rewards or grace_over)


def _ms_to_dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def session_row(state: SessionState, *, now_ms: int, reward_grace_s: float, idle_timeout_s: float) -> dict[str, Any]:
    """The `sessions` table row for a session state, as of `now_ms`."""
    start = state.start or _NO_START
    end = state.end or _NO_END
    status, finalized = session_status(
        state, now_ms=now_ms, reward_grace_s=reward_grace_s, idle_timeout_s=idle_timeout_s
    )
    reward = state.rewards.get(REWARD_OBJECTIVE)
    if reward is None and state.rewards:
        reward = state.rewards[min(state.rewards)]
    achievements = reward.achievements if reward and reward.achievements else state.turn_achievements
    received = len(state.turn_offsets)
    num_turns = end.num_turns
    return {
        "session_id": state.session_id,
        "env_name": start.env_name,
        "policy_name": start.policy_name,
        "model": start.model,
        "task_id": start.task_id,
        "split": start.split,
        "seed": start.seed,
        "run_id": start.run_id,
        "status": status,
        "finalized": finalized,
        "num_turns": num_turns,
        "turns_received": received,
        "missing_turns": None if num_turns is None else max(num_turns - received, 0),
        "started_at": datetime.fromisoformat(start.ts) if start.ts else _ms_to_dt(state.first_record_ms),
        "ended_at": datetime.fromisoformat(end.ts) if end.ts else None,
        "total_reward": reward.total_reward if reward else None,
        "step_reward_sum": state.step_reward_sum,
        "achievements": list(achievements),
        "achievements_count": len(achievements),
        "judgment": state.judgment.label if state.judgment else None,
        "tools": start.tools,
        "metadata": start.metadata,
        "last_event_at": _ms_to_dt(state.last_record_ms),
        "updated_at": _ms_to_dt(now_ms),
        "last_offset": state.last_offset,
        "kafka_topic": state.topic,
        "kafka_partition": state.partition,
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
) -> SessionState:
    """Rebuild a session's state from its lake rows: the `sessions` row, its turns and rewards.

    The lake is the truth; the worker's in-memory state is only a cache of open sessions. Offsets
    of the start and end records are not stored, so a replayed start/end counts as a duplicate,
    which writes no row either way.
    """
    st = SessionState(session_id, partition, topic)
    for t in turns:
        st.turn_offsets[t["turn"]] = t["kafka_offset"]
        if t.get("reward") is not None:
            st.step_reward_sum += t["reward"]
    st.turn_achievements = sorted({a for t in turns for a in (t.get("achievements") or [])})
    for r in sorted(rewards, key=lambda r: (_iso(r["ts"]) or "", r["kafka_offset"])):
        st.reward_event_offsets[r["event_id"]] = r["kafka_offset"]
        entry_ts = _iso(r["ts"])
        if r["kind"] == "outcome_reward":
            st.rewards[r["objective"] or REWARD_OBJECTIVE] = LatestReward(
                r["total_reward"], tuple(r.get("achievements") or ()), entry_ts, r["kafka_offset"])
        else:
            st.judgment = LatestJudgment(r["label"], entry_ts, r["kafka_offset"])
    offsets = [t["kafka_offset"] for t in turns] + [r["kafka_offset"] for r in rewards]
    if session is not None:
        if session.get("kafka_partition") is not None:
            st.partition = session["kafka_partition"]
            st.topic = session.get("kafka_topic") or topic
        if session.get("tools") is not None:  # a session_start was folded
            st.start = StartInfo(
                -1, session.get("env_name"), session.get("policy_name"), session.get("model"), session.get("task_id"),
                session.get("split"), session.get("seed"), session.get("run_id"), session.get("tools"),
                session.get("metadata"), _iso(session.get("started_at")),
            )
        if session.get("status") in SESSION_END_STATUSES:
            st.end = EndInfo(-1, session["status"], session.get("num_turns"), _iso(session.get("ended_at")))
            st.end_record_ms = _ms(session.get("ended_at")) or _ms(session.get("last_event_at"))
        st.first_record_ms = _ms(session.get("started_at"))
        st.last_record_ms = _ms(session.get("last_event_at"))
        offsets.append(session.get("last_offset") if session.get("last_offset") is not None else -1)
    st.last_offset = max(offsets, default=-1)
    return st
