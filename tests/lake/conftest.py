"""Temp lakes built from wire-format events through the worker's own code path."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from streams.worker.offline import OfflineIngest

TOPIC = "rollout-events"
BASE_TS = datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def lake_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """Writes wire events (models, dicts or raw bytes) to a lake; returns the lake URI.

    The rows are made by the worker's own code (streams.worker.offline: validation, session assembly,
    row batches, the exactly-once writer). Each call is one batch; pass `lake=` to append a later
    batch to the same lake, with the session state carried over as in a running worker.
    """
    ingests: dict[str, OfflineIngest] = {}

    def make(events: Iterable[Any], *, lake: str | None = None) -> str:
        uri = lake or str(tmp_path_factory.mktemp("lake"))
        ingest = ingests.setdefault(uri, OfflineIngest(uri, topic=TOPIC))
        ingest.write(list(events))
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


def rollout(sid: str, task: str, actions: list[str], reward: float) -> list[dict]:
    """A session of `task` whose turn t plays actions[t]; observations follow from the actions so far."""
    events = session_events(sid, turns=len(actions), reward=reward, task_id=task)
    for e in events:
        if e["type"] == "turn":
            t = e["turn"]
            user, asst, tool = e["messages"][1:]
            user["content"] = f"{task} state after {actions[:t]}"
            asst["tool_calls"][0]["function"]["arguments"] = json.dumps({"actions": [actions[t]]})
            tool["content"] = f"did {actions[t]}"
    return events


def reward_event(sid: str, reward: float, achievements: Iterable[str] = (), *, ts: datetime | None = None,
                 objective: str = "reward", event_id: str | None = None) -> dict[str, Any]:
    return {"schema_version": 1, "type": "outcome_reward", "event_id": event_id or f"{sid}-r-{objective}-{reward}",
            "session_id": sid, "ts": (ts or BASE_TS + timedelta(hours=1)).isoformat(), "total_reward": reward,
            "achievements": list(achievements), "objective": objective, "source": "env", "metadata": {}}


def judgment_event(sid: str, label: str, *, ts: datetime | None = None, event_id: str | None = None) -> dict[str, Any]:
    return {"schema_version": 1, "type": "judgment", "event_id": event_id or f"{sid}-j-{label}",
            "session_id": sid, "ts": (ts or BASE_TS + timedelta(hours=1)).isoformat(), "label": label,
            "source": "reviewer", "metadata": {}}
