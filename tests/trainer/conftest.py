"""Trainer fixtures: snapshot directories with a correct manifest (the tiny real model is in tests/conftest.py).

The snapshot writer mirrors the contract of `python -m lake snapshot` (format_version 1); one test
will switch to the real snapshot code once it lands.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ACT_TOOL = {
    "type": "function",
    "function": {
        "name": "act",
        "description": "Crafter actions, in order.",
        "parameters": {
            "type": "object",
            "properties": {"actions": {"type": "array", "items": {"type": "string"}}},
            "required": ["actions"],
        },
    },
}
SYSTEM_PROMPT = "You are playing Crafter. Read the game state, then call the act tool with the next actions."
_DIRECTIONS = ("left", "right", "up", "down")
_TARGETS = {"tree": "collect_wood", "water": "drink_water", "stone": "collect_stone", "grass": "collect_sapling"}


def _observation(rng: random.Random, step: int) -> tuple[str, list[str]]:
    """A Crafter-like state and the action a good policy takes: step towards the target, then `do`."""
    target = rng.choice(sorted(_TARGETS))
    direction = rng.choice(_DIRECTIONS)
    near = rng.random() < 0.5
    text = (
        f"Step {step}. Health 9, food {rng.randint(3, 9)}, drink {rng.randint(3, 9)}. "
        f"Nearest {target}: {'facing it' if near else direction}. Goal: {_TARGETS[target]}."
    )
    actions = ["do"] if near else [f"move_{direction}", "do"]
    return text, actions


def crafter_row(rng: random.Random, index: int, *, turns: int = 2, split: str = "train") -> dict[str, Any]:
    """One conversational SFT row: system, then per turn observation, act tool call, tool result."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
    for turn in range(turns):
        observation, actions = _observation(rng, step=turn * 3)
        call_id = f"call_{index}_{turn}"
        messages += [
            {"role": "user", "content": observation},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function",
                     "function": {"name": "act", "arguments": json.dumps({"actions": actions})}}
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": f"ok: {len(actions)} actions, reward 1.0"},
        ]
    return {
        "messages": messages,
        "tools": [ACT_TOOL],
        "metadata": {
            "session_id": f"s{index}", "env_name": "crafter", "policy_name": "react", "model": "gpt-4o-mini",
            "task_id": f"seed-{index}", "split": split, "seed": index, "total_reward": float(turns),
            "achievements_count": turns, "status": "terminated",
        },
    }


def crafter_rows(n: int, *, seed: int = 0, turns: int = 2, split: str = "train") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [crafter_row(rng, seed * 10_000 + i, turns=turns, split=split) for i in range(n)]


def write_snapshot(
    path: Path, train: list[dict[str, Any]], val: list[dict[str, Any]] | None = None, *, table_versions: dict | None = None
) -> Path:
    """A snapshot dir as `python -m lake snapshot` writes it: JSONL files, stats.json, manifest.json."""
    path.mkdir(parents=True, exist_ok=True)
    contents = {"train.jsonl": train}
    if val is not None:
        contents["val.jsonl"] = val
    files = {}
    for name, rows in contents.items():
        data = "".join(json.dumps(row) + "\n" for row in rows).encode()
        (path / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": len(rows)}
    stats = json.dumps({"rows": {name: len(rows) for name, rows in contents.items()}}).encode()
    (path / "stats.json").write_bytes(stats)
    files["stats.json"] = {"sha256": hashlib.sha256(stats).hexdigest(), "bytes": len(stats)}
    manifest = {
        "format_version": 1,
        "created_at": "2026-11-01T10:00:00+00:00",
        "code_version": "test",
        "lake_uri": "./lake",
        "table_versions": table_versions or {"sessions": 12, "turns": 40, "messages": 40, "rewards": 7},
        "spec": {"min_reward": 1.0, "env_name": "crafter"},
        "counts": {"sessions_total": len(train) + len(val or []), "sessions_kept": len(train) + len(val or []),
                   "sessions_train": len(train), "sessions_val": len(val or []), "dropped": {},
                   "examples": {"train": len(train), "val": len(val or [])},
                   "messages": sum(len(row.get("messages", [])) for row in train + (val or []))},
        "files": files,
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return path


@pytest.fixture
def snapshot_factory(tmp_path: Path) -> Callable[..., Path]:
    """make(n_train=8, n_val=4, name="snap", rows=None) -> a verified-correct snapshot directory."""

    def make(n_train: int = 8, n_val: int | None = 4, *, name: str = "snap", train: list | None = None,
             val: list | None = None, seed: int = 0) -> Path:
        train_rows = train if train is not None else crafter_rows(n_train, seed=seed)
        val_rows = val if val is not None else (crafter_rows(n_val, seed=seed + 1, split="val") if n_val else None)
        return write_snapshot(tmp_path / name, train_rows, val_rows)

    return make
