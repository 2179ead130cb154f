"""End to end on CPU: a tiny real model trained for a few steps on a small tool-call snapshot."""

from __future__ import annotations

import hashlib
import json

from trainer.__main__ import main
from trainer.report import LOSS_CURVE_FILE, SUMMARY_FILE

FAST = ["--max_steps", "3", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
        "--learning_rate", "1e-3", "--disable_tqdm", "true"]


def test_train_writes_a_loadable_model_and_lineage(snapshot_factory, tiny_model_dir, tmp_path, capsys):
    snapshot = snapshot_factory(n_train=8, n_val=4)
    output = tmp_path / "run"

    assert main(["--snapshot", str(snapshot), "--model", str(tiny_model_dir), "--output", str(output), *FAST]) == 0

    assert "trained 3 steps" in capsys.readouterr().out
    summary = json.loads((output / SUMMARY_FILE).read_text())
    manifest_bytes = (snapshot / "manifest.json").read_bytes()
    assert summary["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert summary["manifest"] == json.loads(manifest_bytes)
    assert summary["manifest"]["table_versions"] == {"sessions": 12, "turns": 40, "messages": 40, "rewards": 7}
    assert summary["steps"] == 3
    assert summary["tokens_seen"] > 0 and summary["tokens_per_second"] > 0
    assert summary["final_loss"] > 0 and summary["eval_loss"] > 0
    assert summary["device"]["type"] == "cpu"
    assert summary["data"]["train"]["examples"] == 8 and summary["data"]["val"]["examples"] == 4
    assert summary["config"]["assistant_only_loss"] is True
    assert (output / LOSS_CURVE_FILE).read_bytes().startswith(b"\x89PNG")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(output)
    tokenizer = AutoTokenizer.from_pretrained(output)
    assert tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def test_lora_output_is_merged_and_loadable(snapshot_factory, tiny_model_dir, tmp_path):
    snapshot = snapshot_factory(n_train=4, n_val=None)
    output = tmp_path / "lora"
    argv = ["--snapshot", str(snapshot), "--model", str(tiny_model_dir), "--output", str(output), *FAST,
            "--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--lora_target_modules", "q_proj", "v_proj"]

    assert main(argv) == 0

    summary = json.loads((output / SUMMARY_FILE).read_text())
    assert summary["model"]["lora"]["r"] == 4 and summary["eval_loss"] is None
    assert not (output / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(output)


def test_evaluate_reports_loss_and_tool_call_rate(snapshot_factory, tiny_model_dir, tmp_path, capsys):
    from trainer.evaluate import main as evaluate

    snapshot = snapshot_factory(n_train=2, n_val=3)
    result_file = tmp_path / "eval.json"

    argv = ["--model", str(tiny_model_dir), "--snapshot", str(snapshot), "--max_new_tokens", "8", "--output", str(result_file)]
    assert evaluate(argv) == 0

    result = json.loads(capsys.readouterr().out)
    assert result == json.loads(result_file.read_text())
    assert result["split"] == "val" and result["examples"] == 3
    assert result["eval_loss"] > 0 and result["eval_tokens"] > 0
    assert result["tool_call_prompts"] == 6  # two act turns per conversation
    assert 0.0 <= result["valid_tool_call_rate"] <= 1.0
