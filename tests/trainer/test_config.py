"""Defaults for agent SFT, a TOML config file, and flags, in that order of precedence."""

from __future__ import annotations

import pytest

from trainer.config import DeviceInfo, agent_sft_defaults, parse_train_args
from trainer.exceptions import TrainerConfigError

CPU = DeviceInfo(cuda=False, bf16=False, flash_attention=False, name="cpu")
GPU = DeviceInfo(cuda=True, bf16=True, flash_attention=True, name="NVIDIA H100")


def test_agent_sft_defaults_on_cpu():
    opts, sft, model_args = parse_train_args(["--snapshot", "snaps/crafter"], device=CPU)

    assert (sft.num_train_epochs, sft.per_device_train_batch_size, sft.gradient_accumulation_steps) == (1, 2, 4)
    assert (sft.learning_rate, sft.max_grad_norm, sft.warmup_steps, sft.max_length) == (2e-5, 1.0, 0.1, 2048)
    assert sft.assistant_only_loss is True
    assert sft.bf16 is False and sft.gradient_checkpointing is False and sft.packing is False
    assert model_args.use_peft is False
    assert opts.model is None and opts.output == "runs/crafter-sft"


def test_gpu_defaults_turn_on_bf16_checkpointing_and_padding_free_packing():
    defaults = agent_sft_defaults(GPU)

    assert defaults["bf16"] and defaults["gradient_checkpointing"]
    assert defaults["packing"] and defaults["padding_free"] and defaults["attn_implementation"] == "flash_attention_2"


def test_toml_config_overrides_defaults_and_flags_override_the_file(tmp_path):
    config = tmp_path / "train.toml"
    config.write_text('snapshot = "snaps/a"\nlearning_rate = 1e-4\nmax_length = 512\nuse_peft = true\nlora_r = 8\n')

    opts, sft, model_args = parse_train_args(["--config", str(config), "--max-length", "256", "--model", "m.gguf"], device=CPU)

    assert opts.snapshot == "snaps/a" and opts.model == "m.gguf"
    assert sft.learning_rate == 1e-4 and sft.max_length == 256
    assert model_args.use_peft is True and model_args.lora_r == 8


def test_unknown_config_keys_are_named(tmp_path):
    config = tmp_path / "train.toml"
    config.write_text('snapshot = "s"\nlearning_rat = 1e-4\n')

    with pytest.raises(TrainerConfigError, match=r"unknown settings \['learning_rat'\]"):
        parse_train_args(["--config", str(config)], device=CPU)


def test_cpu_threads_drop_to_one_only_when_the_cores_are_busy(monkeypatch):
    from trainer.config import cpu_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads(cores=2, load=5.2) == 1
    assert cpu_threads(cores=2, load=0.3) is None  # idle: torch's own choice
    assert cpu_threads(cores=1, load=9.0) is None
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads(cores=2, load=5.2) is None  # the user's setting wins
