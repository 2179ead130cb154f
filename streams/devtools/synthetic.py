"""Synthetic Crafter-shaped rollouts as wire-format dicts, for tests, benchmarks and load.

Deterministic for a given seed, so a test knows exactly which rows the lake must end up with.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["SyntheticSession", "HostileRecord", "make_sessions", "expected_counts", "hostile_records", "poison_records",
           "to_records"]

_ACHIEVEMENTS = [
    "collect_wood", "place_table", "make_wood_pickaxe", "collect_stone", "collect_drink",
    "eat_cow", "wake_up", "collect_sapling", "place_plant", "defeat_zombie",
]
_ACTIONS = ["move_left", "move_right", "move_up", "move_down", "do", "noop", "sleep", "place_table"]
SYSTEM_PROMPT = (
    "You are playing Crafter. Each turn you see the game state and call the `act` tool with "
    "1-5 actions. Collect resources, craft tools and unlock achievements."
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "act",
            "description": "Perform a batch of Crafter actions.",
            "parameters": {
                "type": "object",
                "properties": {"actions": {"type": "array", "items": {"type": "string", "enum": _ACTIONS}}},
                "required": ["actions"],
            },
        },
    }
]


@dataclass
class SyntheticSession:
    session_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    num_turns: int = 0
    num_messages: int = 0
    num_rewards: int = 0


def _observation(rng: random.Random, step: int, size: int) -> str:
    grid = "\n".join("".join(rng.choice("..TTgwsc") for _ in range(9)) for _ in range(7))
    text = (
        f"=== CRAFTER GAME STATE ===\nStep: {step}/10000\nHealth: {rng.randint(1, 9)} Food: {rng.randint(1, 9)} "
        f"Drink: {rng.randint(1, 9)} Energy: {rng.randint(1, 9)}\nInventory: wood={rng.randint(0, 5)} "
        f"stone={rng.randint(0, 3)}\nMap (you are @):\n{grid}\n"
    )
    if len(text) < size:
        text += "Notes: " + "x" * (size - len(text))
    return text


def make_sessions(
    n_sessions: int,
    turns_per_session: int = 20,
    *,
    seed: int = 0,
    obs_chars: int = 600,
    judgment_every: int = 5,
    env_name: str = "crafter",
    run_id: str = "synthetic",
    start_ts: datetime | None = None,
) -> list[SyntheticSession]:
    """Sessions with start, turns (4 messages each), end, an outcome reward and some judgments."""
    rng = random.Random(seed)
    t0 = start_ts or datetime(2026, 11, 1, tzinfo=timezone.utc)
    sessions = []
    for s in range(n_sessions):
        sid = f"{run_id}-s{seed}-{s:06d}"
        sess = SyntheticSession(sid)
        ts = t0 + timedelta(seconds=s)
        eid = iter(range(10**9))

        def ev(kind: str, **body: Any) -> dict[str, Any]:
            return {
                "schema_version": 1, "type": kind, "event_id": f"{sid}-e{next(eid)}", "session_id": sid,
                "ts": (ts + timedelta(milliseconds=len(sess.events))).isoformat(), "metadata": {}, **body,
            }

        sess.events.append(ev(
            "session_start", env_name=env_name, policy_name="react", model=rng.choice(["gpt-4o-mini", "qwen-7b"]),
            task_id=f"seed-{s % 97}", split=rng.choice(["train", "train", "train", "test"]), seed=s % 97,
            run_id=run_id, tools=TOOLS,
        ))
        got: list[str] = []
        for t in range(turns_per_session):
            new = [a for a in _ACHIEVEMENTS if a not in got and rng.random() < 0.04]
            got += new
            call_id = f"c{t}"
            actions = [rng.choice(_ACTIONS) for _ in range(rng.randint(1, 4))]
            messages = [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": _observation(rng, t, obs_chars)},
                {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "act", "arguments": json.dumps({"actions": actions})}}]},
                {"role": "tool", "tool_call_id": call_id, "content": f"ok: {', '.join(actions)}"},
            ]
            sess.events.append(ev(
                "turn", turn=t, messages=messages, reward=float(len(new)), achievements=new,
                valid=rng.random() > 0.05, done=t == turns_per_session - 1,
            ))
            sess.num_messages += len(messages)
        sess.num_turns = turns_per_session
        sess.events.append(ev("session_end", status=rng.choice(["terminated", "truncated"]), num_turns=turns_per_session))
        sess.events.append(ev("outcome_reward", total_reward=float(len(got)), achievements=got, objective="reward", source="env"))
        sess.num_rewards = 1
        if judgment_every and s % judgment_every == 0:
            sess.events.append(ev("judgment", label=rng.choice(["acceptable", "unacceptable"]), source="reviewer", reason="synthetic"))
            sess.num_rewards += 1
        sessions.append(sess)
    return sessions


def poison_records(n: int, *, seed: int = 0) -> list[tuple[bytes | None, bytes]]:
    """(key, value) records that must all land in dead_letters: one of each kind, cycled."""
    rng = random.Random(seed)
    kinds = [
        lambda i: (b"p", b"{not json"),
        lambda i: (b"p", json.dumps({"schema_version": 1, "type": "teleport", "event_id": f"p{i}", "session_id": "p"}).encode()),
        lambda i: (b"p", json.dumps({"schema_version": 2, "type": "turn", "event_id": f"p{i}", "session_id": "p", "turn": 0}).encode()),
        lambda i: (b"p", json.dumps({"schema_version": 1, "type": "turn", "event_id": f"p{i}", "session_id": "p", "turn": "zero"}).encode()),
        lambda i: (b"p", json.dumps({"schema_version": 1, "type": "turn", "session_id": "p", "turn": 1}).encode()),
        lambda i: (b"p", json.dumps({"schema_version": 1, "type": "outcome_reward", "event_id": f"p{i}", "session_id": "p", "total_reward": 1, "metadata": {"blob": "y" * 300_000}}).encode()),
        lambda i: (b"p", b"\xff\xfe binary"),
        lambda i: (b"p", json.dumps([1, 2, 3]).encode()),
        lambda i: (b"other-key", json.dumps({"schema_version": 1, "type": "judgment", "event_id": f"p{i}", "session_id": "p", "label": "ok"}).encode()),
    ]
    return [kinds[i % len(kinds)](rng.randint(0, 10**9)) for i in range(n)]


@dataclass
class HostileRecord:
    """A record a hostile or buggy producer could send; each must become one dead letter."""

    kind: str
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None  # Kafka record timestamp (None: the producer's clock)


def hostile_records(tag: str = "h") -> list[HostileRecord]:
    """Records that once stopped ingestion or escaped the dead-letter path, one of each kind."""

    def event(kind: str, sid: str, **body: Any) -> dict[str, Any]:
        return {"schema_version": 1, "type": kind, "event_id": f"{sid}-{kind}", "session_id": sid, **body}

    def rec(kind: str, body: dict[str, Any] | bytes, *, key: bytes | None | str = "sid", ts: int | None = None) -> HostileRecord:
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        sid = body.get("session_id", f"{tag}-{kind}") if isinstance(body, dict) else f"{tag}-{kind}"
        return HostileRecord(kind, sid.encode() if key == "sid" else key, value, ts)  # type: ignore[arg-type, union-attr]

    msgs = [{"role": "user", "content": "hi"}]
    # json.dumps itself would recurse 3,000 deep; a producer in another language would not.
    deep = (
        '{"schema_version":1,"type":"judgment","event_id":"%s-deep-j","session_id":"%s-deep","label":"ok","metadata":%s}'
        % (tag, tag, '{"x":' * 3000 + "1" + "}" * 3000)
    ).encode()
    surrogate = json.dumps(event("turn", f"{tag}-sur", turn=0, messages=[{"role": "user", "content": "@"}]))
    return [
        rec("turn_past_int64", event("turn", f"{tag}-t64", turn=2**64, messages=msgs)),
        rec("seed_past_int64", event("session_start", f"{tag}-s64", seed=-(2**63) - 1)),
        rec("deep_brackets", b"[" * 5000, key=f"{tag}-brackets".encode()),
        rec("ts_before_year_1_in_utc", event("turn", f"{tag}-ts", turn=0, ts="0001-01-01T00:00:00+14:00", messages=msgs)),
        rec("lone_surrogate", surrogate.replace('"@"', '"\\ud800"').encode(), key=f"{tag}-sur".encode()),
        rec("metadata_3000_deep", deep, key=f"{tag}-deep".encode()),
        rec("record_timestamp_after_9999", event("turn", f"{tag}-future", turn=0, messages=msgs), ts=300_000_000_000_000),
        rec("invalid_990kb", event("turn", f"{tag}-big", turn="zero", messages=[{"role": "user", "content": "z" * 990_000}])),
        rec("no_key", event("turn", f"{tag}-nokey", turn=0, messages=msgs), key=None),
    ]


def to_records(
    sessions: list[SyntheticSession],
    *,
    seed: int = 0,
    duplicate_rate: float = 0.0,
    shuffle: bool = True,
    early_reward_rate: float = 0.0,
) -> list[tuple[bytes, bytes]]:
    """Kafka (key, value) records of the sessions: shuffled, with duplicates and early rewards."""
    rng = random.Random(seed)
    records = []
    for sess in sessions:
        events = list(sess.events)
        if early_reward_rate and rng.random() < early_reward_rate:
            reward = next(e for e in events if e["type"] == "outcome_reward")
            events.remove(reward)
            events.insert(0, reward)  # the grader answered before the task app said hello
        for e in events:
            value = json.dumps(e, separators=(",", ":")).encode()
            records.append((sess.session_id.encode(), value))
            if duplicate_rate and rng.random() < duplicate_rate:
                records.append((sess.session_id.encode(), value))
    if shuffle:
        rng.shuffle(records)
    return records


def expected_counts(sessions: list[SyntheticSession]) -> dict[str, int]:
    return {
        "sessions": len(sessions),
        "turns": sum(s.num_turns for s in sessions),
        "messages": sum(s.num_messages for s in sessions),
        "rewards": sum(s.num_rewards for s in sessions),
    }
