"""Read per-rollout SFT JSONL files (`{"messages": [...], "metadata": {...}}` per line) as v1 events.

Lines that share metadata.session_id (or else metadata.run_id) form one session, in file order
(metadata.turn first when present); any other line is a session of its own. A line that repeats
the session's conversation so far (cumulative logs) only adds its new messages. Each assistant
reply becomes one turn. Session ids without a source id are hashes of the line's content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from schemas import EventValidationError, OutcomeReward, SessionEnd, SessionStart, Turn
from streams.exceptions import ImportSourceError
from streams.importers.common import ImportedSession, make_event, parse_ts, split_turns, stable_id

__all__ = ["read_sft_jsonl"]

SOURCE = "sft_jsonl"
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "model": "assistant", "bot": "assistant", "function": "tool"}
SESSION_KEYS = ("env_name", "policy_name", "model", "task_id", "split", "seed", "run_id")


def _lines(paths: Iterable[str | Path]) -> Iterator[tuple[str, int, dict[str, Any], str]]:
    for path in map(Path, paths):
        if not path.is_file():
            raise ImportSourceError(f"{path}: no such JSONL file")
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ImportSourceError(f"{path}:{lineno}: not JSON ({exc})") from exc
                if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
                    raise ImportSourceError(f"{path}:{lineno}: expected an object with a `messages` list")
                canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                yield path.name, lineno, record, canonical


def _message(msg: Any) -> Any:
    if isinstance(msg, dict) and "role" not in msg and "from" in msg:  # ShareGPT
        msg = {"role": msg["from"], "content": msg.get("value")}
    if isinstance(msg, dict) and msg.get("role") in ROLE_ALIASES:
        msg = {**msg, "role": ROLE_ALIASES[msg["role"]]}
    return msg


def read_sft_jsonl(paths: Iterable[str | Path]) -> Iterator[ImportedSession]:
    """Yield one ImportedSession per session found in the files (grouping needs them all read first)."""
    groups: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
    for name, lineno, record, canonical in _lines(paths):
        meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
        if meta.get("session_id"):
            key = f"session:{meta['session_id']}"
        elif meta.get("run_id"):
            key = f"run:{meta['run_id']}"
        else:
            key = f"line:{stable_id(canonical)}"
        groups.setdefault(key, []).append((name, lineno, record))
    for key, lines in groups.items():
        try:
            yield _session(key, lines)
        except (EventValidationError, ValueError, TypeError) as exc:
            yield ImportedSession(_session_id(key, lines), error=str(exc))


def _session_id(key: str, lines: list[tuple[str, int, dict[str, Any]]]) -> str:
    meta = lines[0][2].get("metadata") or {}
    if key.startswith("session:"):
        return str(meta["session_id"])
    return "sft-" + stable_id(SOURCE, key)


def _turn_order(item: tuple[int, tuple[str, int, dict[str, Any]]]) -> tuple[int, int]:
    pos, (_name, _lineno, record) = item
    turn = (record.get("metadata") or {}).get("turn")
    return (turn if isinstance(turn, int) and not isinstance(turn, bool) else pos, pos)


def _session(key: str, lines: list[tuple[str, int, dict[str, Any]]]) -> ImportedSession:
    sid = _session_id(key, lines)
    ordered = [line for _, line in sorted(enumerate(lines), key=_turn_order)]
    first_meta = dict(ordered[0][2].get("metadata") or {})

    conversation: list[Any] = []
    turns: list[dict[str, Any]] = []
    for name, lineno, record in ordered:
        meta = record.get("metadata") or {}
        messages = [_message(m) for m in record["messages"]]
        if conversation and messages[: len(conversation)] == conversation:
            new = messages[len(conversation):]  # a cumulative log repeats what came before
        else:
            new = messages
        conversation = messages
        pieces = split_turns(new) if new else []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            turns.append({
                "messages": piece,
                "reward": meta.get("reward") if last else None,
                "ts": parse_ts(meta.get("created_at") or meta.get("timestamp")),
                "metadata": {"source": SOURCE, "file": name, "line": lineno},
            })

    created = parse_ts(first_meta.get("created_at") or first_meta.get("timestamp"))
    seed = first_meta.get("seed")
    out: list[Any] = [make_event(
        SessionStart, event_id=stable_id(SOURCE, sid, "start"), session_id=sid, ts=created,
        env_name=first_meta.get("env_name") or first_meta.get("env"),
        policy_name=first_meta.get("policy_name") or first_meta.get("policy"),
        model=first_meta.get("model"),
        task_id=None if first_meta.get("task_id") is None else str(first_meta["task_id"]),
        split=first_meta.get("split"),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        run_id=None if first_meta.get("run_id") is None else str(first_meta["run_id"]),
        metadata={"source": SOURCE, "sft_metadata": {k: v for k, v in first_meta.items() if k not in SESSION_KEYS}},
    )]
    for n, turn in enumerate(turns):
        out.append(make_event(
            Turn, event_id=stable_id(SOURCE, sid, "turn", n), session_id=sid, turn=n,
            done=n == len(turns) - 1, ts=turn.pop("ts") or created, **turn,
        ))
    out.append(make_event(
        SessionEnd, event_id=stable_id(SOURCE, sid, "end"), session_id=sid, ts=created,
        status="terminated", num_turns=len(turns), metadata={"source": SOURCE},
    ))
    total = None
    for *_, record in reversed(ordered):  # the latest line that knows the outcome
        value = (record.get("metadata") or {}).get("total_reward")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            total = value
            break
    if total is not None:
        last_meta = ordered[-1][2].get("metadata") or {}
        achievements = last_meta.get("achievements") if isinstance(last_meta.get("achievements"), list) else []
        out.append(make_event(
            OutcomeReward, event_id=stable_id(SOURCE, sid, "outcome"), session_id=sid, ts=created,
            total_reward=total, achievements=achievements, objective="reward", source=SOURCE,
            metadata={"achievements_count": last_meta.get("achievements_count")},
        ))
    return ImportedSession(sid, out)
