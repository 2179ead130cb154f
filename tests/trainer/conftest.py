"""Trainer fixtures: snapshot directories with a correct manifest, and a tiny real model.

The snapshot writer mirrors the contract of `python -m lake snapshot` (format_version 1); one test
will switch to the real snapshot code once it lands.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
        "counts": {name: len(rows) for name, rows in contents.items()},
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


TINY_MODEL_VERSION = "tiny-smollm2-v1"


@pytest.fixture(scope="session")
def tiny_model_dir(request: pytest.FixtureRequest) -> Path:
    """A 2-layer, 64-wide Llama with SmolLM2's real tokenizer and chat template, randomly initialised.

    Built once from the bundled GGUF's config and tokenizer (reading the GGUF takes ~30 s) and
    kept in pytest's cache directory across runs.
    """
    cache = Path(request.config.cache.mkdir(f"trainer-{TINY_MODEL_VERSION}"))
    if (cache / "READY").is_file():
        return cache
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from trainer.models import default_model_path

    gguf = Path(default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config.update(
        {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 2048}
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(cache)
    tokenizer.save_pretrained(cache)
    (cache / "READY").write_text(TINY_MODEL_VERSION)
    return cache


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.eos_token = "<|im_end|>"
    return tokenizer
