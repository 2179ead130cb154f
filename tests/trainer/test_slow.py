"""The real SmolLM2-135M-Instruct (the offline GGUF default) learns the tool-call convention on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from trainer.evaluate import main as evaluate

from .conftest import crafter_rows, write_snapshot

EVAL = ["--max_prompts", "8", "--max_new_tokens", "48", "--batch_size", "8"]
# A CPU step of SmolLM2-135M on 2 x ~270 tokens takes ~12 s on 2 cores; the format is learnt in a few.
STEPS = 6


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smollm2_training_lowers_loss_and_raises_valid_tool_calls(tmp_path, capsys):
    snapshot = write_snapshot(
        tmp_path / "crafter", crafter_rows(48, seed=0, turns=1), crafter_rows(8, seed=1, turns=1, split="val")
    )

    assert evaluate(["--snapshot", str(snapshot), *EVAL, "--output", str(tmp_path / "base.json")]) == 0
    base = json.loads((tmp_path / "base.json").read_text())
    capsys.readouterr()

    # The command a user runs, with no --model and no --output: the bundled GGUF, runs/<snapshot>-sft.
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "--snapshot", str(snapshot), "--max-steps", str(STEPS),
         "--per-device-train-batch-size", "2", "--gradient-accumulation-steps", "1", "--learning-rate", "2e-4",
         "--lr-scheduler-type", "constant", "--warmup-steps", "0"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = tmp_path / "runs" / "crafter-sft"
    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["model"]["kind"] == "gguf" and summary["steps"] == STEPS

    assert evaluate(["--snapshot", str(snapshot), "--model", str(output), *EVAL, "--output", str(tmp_path / "tuned.json")]) == 0
    tuned = json.loads((tmp_path / "tuned.json").read_text())

    report = {
        "train_loss": [summary["first_loss"], summary["final_loss"]],
        "eval_loss": [base["eval_loss"], tuned["eval_loss"]],
        "valid_tool_call_rate": [base["valid_tool_call_rate"], tuned["valid_tool_call_rate"]],
        "tool_call_match_rate": [base["tool_call_match_rate"], tuned["tool_call_match_rate"]],
        "steps_per_second": summary["steps_per_second"],
        "tokens_per_second": summary["tokens_per_second"],
    }
    print(json.dumps(report))  # shown with -s: the numbers the team compares runs by
    assert summary["final_loss"] < summary["first_loss"]
    assert tuned["eval_loss"] < base["eval_loss"]
    assert tuned["valid_tool_call_rate"] > base["valid_tool_call_rate"]
    assert tuned["valid_tool_call_rate"] >= 0.75
