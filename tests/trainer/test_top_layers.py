"""`--train-top-layers N`: only the top N blocks (and the final norm) change; the rest stay as loaded."""

from __future__ import annotations

import json

import pytest

from trainer.__main__ import main
from trainer.report import SUMMARY_FILE

FAST = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
        "--learning_rate", "1e-2", "--disable_tqdm", "true"]


def test_only_the_top_block_and_the_final_norm_are_trained(snapshot_factory, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    snapshot = snapshot_factory(n_train=4, n_val=None)
    output = tmp_path / "top1"
    assert main(["--snapshot", str(snapshot), "--model", str(tiny_model_dir), "--output", str(output), *FAST,
                 "--train-top-layers", "1"]) == 0

    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(output).state_dict()
    changed = {name for name, value in after.items() if not torch.equal(value, before[name])}
    assert changed, "the top block should have been trained"
    assert all(name.startswith(("model.layers.1.", "model.norm.")) for name in changed), sorted(changed)
    assert json.loads((output / SUMMARY_FILE).read_text())["model"]["train_top_layers"] == 1


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["--train-top-layers", "3"], "--train_top_layers 3: the model has 2 blocks; pass 1-2, or 0 for all"),
        (["--train-top-layers", "1", "--use_peft"], "--train_top_layers and --use_peft both pick what to train"),
    ],
)
def test_bad_top_layer_settings_are_one_line_errors(snapshot_factory, tiny_model_dir, tmp_path, capsys, extra, error):
    snapshot = snapshot_factory(n_train=2, n_val=None)
    argv = ["--snapshot", str(snapshot), "--model", str(tiny_model_dir), "--output", str(tmp_path / "out"), *FAST, *extra]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert error in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
