"""The closed loop on the real model: teacher rollouts -> worker -> lake -> `lake snapshot` -> TRL -> a tool-calling SmolLM2.

Real Crafter, the real broker and worker, the real snapshot code, the bundled SmolLM2-135M-Instruct
and the same generation and validation path the demo's model player uses (no constrained decoding).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("crafter")

from examples.crafter import SYSTEM_PROMPT, CrafterGame, ModelPolicy, bundled_gguf, render_observation  # noqa: E402
from examples.crafter.game import ACTIONS  # noqa: E402
from examples.crafter.policies import decision_from_message  # noqa: E402
from examples.crafter.taskapp import run_episodes  # noqa: E402
from examples.crafter.teacher import TeacherBrain  # noqa: E402
from examples.crafter.tools import parse_reply  # noqa: E402
from lake.cli import main as lake_main  # noqa: E402
from lake.reader import connect  # noqa: E402
from tests.conftest import wait_for  # noqa: E402

TRAIN_SEEDS, HELD_OUT_SEEDS = range(6), range(1000, 1004)
# Loss on the call falls from ~1.0 to ~0.2 by step 2 (lr 3e-4, 4 turns a step, the top 10 blocks).
STEPS, BATCH, TOP_LAYERS = 5, 4, 10


def held_out_observations(turns: int = 4) -> list[list[dict[str, str]]]:
    """[system, observation] of the first turns of seeds no teacher episode was played on."""
    conversations = []
    for seed in HELD_OUT_SEEDS:
        game, brain = CrafterGame(seed), TeacherBrain(seed)
        state = game.reset()
        for turn in range(turns):
            conversations.append([{"role": "system", "content": SYSTEM_PROMPT},
                                  {"role": "user", "content": render_observation(state, turn=turn, max_turns=turns)}])
            game.step([ACTIONS.index(brain.act(state))])
            state = game.state
    return conversations


def valid_rate(model: str, conversations: list[list[dict[str, str]]]) -> tuple[float, list[str]]:
    """Share of greedy replies that are a usable `act` call, scored exactly as the Crafter model player does."""
    policy = ModelPolicy(model, max_new_tokens=40, batch_size=len(conversations))
    replies = policy.generate_batch(conversations)
    valid = []
    for text in replies:
        try:
            valid.append(decision_from_message(parse_reply(text)).valid)
        except ValueError:
            valid.append(False)
    return sum(valid) / len(valid), replies


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smollm2_fine_tuned_on_a_lake_snapshot_of_teacher_turns_learns_to_call_act(
    broker, topic_factory, lake_uri_factory, worker_factory, tmp_path  # noqa: F811
):
    import torch

    topic, lake = topic_factory(), lake_uri_factory()
    worker = worker_factory(topic, lake)
    teacher = run_episodes(list(TRAIN_SEEDS), policy="teacher", max_turns=10, bootstrap_servers=broker.bootstrap_servers,
                           topic=topic, run_id="teacher", concurrency=2)

    def finalized() -> bool:
        try:
            with connect(lake) as con:
                return con.query("SELECT count(*) FROM sessions WHERE finalized").fetchone()[0] == len(teacher)
        except Exception:  # tables not created yet
            return False

    wait_for(finalized, 120, "the teacher sessions finalized in the lake", [worker])
    snapshot = tmp_path / "crafter"
    assert lake_main(["snapshot", "--lake", lake, "--out", str(snapshot), "--run-ids", "teacher", "--granularity", "turn",
                      "--context-turns", "0", "--val-fraction", "0", "--no-progress"]) == 0
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["files"]["train.jsonl"]["rows"] == sum(r.num_turns for r in teacher)

    conversations = held_out_observations()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a second thread on a busy 2-core machine mostly waits
    try:
        base, _ = valid_rate(str(bundled_gguf()), conversations)
        # The command a user runs, with no --model and no --output: the bundled GGUF, runs/<snapshot>-sft.
        proc = subprocess.run(
            [sys.executable, "-m", "trainer", "--snapshot", str(snapshot), "--max-steps", str(STEPS),
             "--per-device-train-batch-size", str(BATCH), "--gradient-accumulation-steps", "1",
             "--learning-rate", "3e-4", "--warmup-steps", "0", "--max-length", "512", "--logging-steps", "1",
             "--train-top-layers", str(TOP_LAYERS)],
            capture_output=True, text=True, cwd=tmp_path,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        output = tmp_path / "runs" / "crafter-sft"
        summary = json.loads((output / "training_summary.json").read_text())
        tuned, replies = valid_rate(str(output), conversations)
    finally:
        torch.set_num_threads(threads)

    print(json.dumps({"held_out_observations": len(conversations), "valid_tool_call_rate": [base, tuned],
                      "train_loss": [summary["first_loss"], summary["final_loss"]],
                      "tokens_per_second": summary["tokens_per_second"], "sample": replies[:2]}))
    assert summary["model"]["kind"] == "gguf" and summary["steps"] == STEPS
    assert summary["model"]["train_top_layers"] == TOP_LAYERS
    assert summary["manifest"]["table_versions"] == manifest["table_versions"]
    assert summary["final_loss"] < summary["first_loss"]
    assert base <= 0.2
    assert tuned >= 0.9
