"""`--format preference`: DPO pairs from rollouts of the same task, and a DPOTrainer round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lake.cli import main

from .conftest import rollout

SYSTEM = {"role": "system", "content": "You are playing Crafter."}


def user(task, done):
    return {"role": "user", "content": f"{task} state after {done}"}


def call(t, action):
    return {"role": "assistant", "content": "", "tool_calls": [{"id": f"c{t}", "type": "function", "function": {
        "name": "act", "arguments": json.dumps({"actions": [action]})}}]}


def tool(t, action):
    return {"role": "tool", "content": f"did {action}", "tool_call_id": f"c{t}"}


@pytest.fixture
def lake_uri(lake_factory):
    return lake_factory(
        rollout("a1", "A", ["noop", "wood", "table"], 2.0)
        + rollout("a2", "A", ["noop", "left", "left"], 0.0)
        + rollout("a3", "A", ["noop", "wood", "left"], 1.5)
        + rollout("b1", "B", ["noop"], 1.0)  # a single rollout: nothing to pair
        + rollout("c1", "C", ["x"], 1.0) + rollout("c2", "C", ["y"], 1.0)  # equal rewards
    )


def _snap(uri: str, out: Path, *flags: str) -> tuple[list[dict], dict]:
    assert main(["snapshot", "--lake", uri, "--out", str(out), "--no-progress", "--format", "preference", *flags]) == 0
    lines = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    return lines, json.loads((out / "manifest.json").read_text())


def test_session_pairs_share_the_prompt_and_differ_by_the_margin(lake_uri, tmp_path):
    lines, manifest = _snap(lake_uri, tmp_path / "s", "--min-margin", "1")
    assert lines == [{
        "prompt": [SYSTEM, user("A", [])],
        "chosen": [call(0, "noop"), tool(0, "noop"), user("A", ["noop"]), call(1, "wood"), tool(1, "wood"),
                   user("A", ["noop", "wood"]), call(2, "table")],
        "rejected": [call(0, "noop"), tool(0, "noop"), user("A", ["noop"]), call(1, "left"), tool(1, "left"),
                     user("A", ["noop", "left"]), call(2, "left")],
        "tools": lines[0]["tools"],
        "metadata": {"task_id": "A", "chosen_session_id": "a1", "rejected_session_id": "a2",
                     "chosen_reward": 2.0, "rejected_reward": 0.0, "margin": 2.0},
    }]
    pref = manifest["counts"]["preference"]
    assert pref == {"pairs": 1, "pairs_by_split": {"train": 1, "val": 0}, "tasks": 1, "sessions_paired": 2,
                    "not_paired": {"margin_too_small": 2, "single_rollout_tasks": 1}}
    assert manifest["counts"]["examples"] == {"train": 1, "val": 0}
    # Without a margin every lower reward pairs with the best rollout of its task.
    lines, manifest = _snap(lake_uri, tmp_path / "s0")
    assert [(x["metadata"]["chosen_session_id"], x["metadata"]["rejected_session_id"]) for x in lines] == \
        [("a1", "a3"), ("a1", "a2")]
    assert manifest["counts"]["preference"]["not_paired"] == {"margin_too_small": 1, "single_rollout_tasks": 1}


def test_turn_pairs_are_the_first_differing_action(lake_uri, tmp_path):
    lines, manifest = _snap(lake_uri, tmp_path / "t", "--granularity", "turn")
    by = {x["metadata"]["rejected_session_id"]: x for x in lines}
    # a1 vs a3: same history through turn 1; they differ at turn 2's action.
    assert by["a3"]["prompt"] == [SYSTEM, user("A", []), call(0, "noop"), tool(0, "noop"), user("A", ["noop"]),
                                  call(1, "wood"), tool(1, "wood"), user("A", ["noop", "wood"])]
    assert by["a3"]["chosen"] == [call(2, "table")] and by["a3"]["rejected"] == [call(2, "left")]
    assert by["a2"]["prompt"][-1] == user("A", ["noop"])
    assert by["a2"]["chosen"] == [call(1, "wood")] and by["a2"]["rejected"] == [call(1, "left")]
    assert manifest["counts"]["preference"]["pairs"] == 2


def test_preference_refuses_best_per_task(lake_uri, tmp_path, capsys):
    assert main(["snapshot", "--lake", lake_uri, "--out", str(tmp_path / "x"), "--format", "preference",
                 "--best-per-task"]) == 2
    assert "nothing to pair" in capsys.readouterr().err


@pytest.mark.slow
def test_dpo_trainer_runs_on_a_preference_snapshot(lake_uri, tmp_path, tiny_model_dir):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    _snap(lake_uri, tmp_path / "p", "--granularity", "turn")
    data = datasets.load_dataset("json", data_files=str(tmp_path / "p" / "train.jsonl"), split="train")
    data = data.remove_columns(["metadata", "tools"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = DPOConfig(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2,
                     report_to=[], logging_steps=1, save_strategy="no", use_cpu=True)
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 2
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # real numbers, not NaN
