"""The GPU path: device placement, bf16 where supported, gradient checkpointing. Skipped without CUDA."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_tiny_model_trains_on_the_gpu_with_device_defaults(snapshot_factory, tiny_model_dir, tmp_path):
    from trainer.__main__ import main

    output = tmp_path / "gpu"
    argv = ["--snapshot", str(snapshot_factory()), "--model", str(tiny_model_dir), "--output", str(output),
            "--max_steps", "3", "--learning_rate", "1e-3"]

    assert main(argv) == 0

    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["device"]["type"] == "cuda"
    assert summary["device"]["bf16"] is torch.cuda.is_bf16_supported()
    assert summary["config"]["gradient_checkpointing"] is True
    assert summary["final_loss"] > 0 and summary["tokens_per_second"] > 0


def test_evaluate_generates_on_the_gpu(snapshot_factory, tiny_model_dir, capsys):
    from trainer.evaluate import main as evaluate

    assert evaluate(["--snapshot", str(snapshot_factory()), "--model", str(tiny_model_dir), "--max_new_tokens", "8"]) == 0

    assert json.loads(capsys.readouterr().out)["tool_call_prompts"] > 0
