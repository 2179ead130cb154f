"""Every snapshot carries a dataset card, and `datasets` loads every format."""

from __future__ import annotations

import json

import pytest

from lake.card import histogram
from lake.cli import main

from .conftest import rollout


@pytest.fixture(scope="module")
def lake_uri(tmp_path_factory):
    from streams.worker.offline import OfflineIngest

    from .conftest import TOPIC

    uri = str(tmp_path_factory.mktemp("card-lake"))
    events = []
    for task in ("A", "B", "C", "D"):
        events += rollout(f"{task}1", task, ["noop", "wood"], 2.0) + rollout(f"{task}2", task, ["noop", "left"], 0.5)
    for e in events:  # an invalid turn, kept as context by --mask-invalid-turns
        if e["type"] == "turn" and e["session_id"] == "A2" and e["turn"] == 1:
            e["valid"] = False
    OfflineIngest(uri, topic=TOPIC).write(events)
    return uri


FORMATS = {
    "messages": ["--val-fraction", "0.5", "--salvage"],
    "prompt_completion": ["--format", "prompt_completion", "--granularity", "turn", "--context-turns", "all"],
    "masked": ["--mask-invalid-turns", "--val-fraction", "0.5"],
    "preference": ["--format", "preference", "--granularity", "turn"],
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_card_and_load_dataset(lake_uri, tmp_path, name):
    import datasets

    out = tmp_path / name
    assert main(["snapshot", "--lake", lake_uri, "--out", str(out), "--no-progress", *FORMATS[name]]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    card = (out / "README.md").read_text()
    c = manifest["counts"]
    assert f"{c['sessions_kept']} of {c['sessions_total']} sessions" in card
    assert "## Reward of the kept sessions" in card and "#" * 40 in card  # the histogram's tallest bar
    for table, version in manifest["table_versions"].items():
        assert f"{table} {version}" in card
    assert manifest["code_version"] in card and manifest["files"]["train.jsonl"]["sha256"] in card
    assert "README.md" not in manifest["files"]  # the data is verified, the prose is not
    splits = {"train": str(out / "train.jsonl")}
    if manifest["files"]["val.jsonl"]["rows"]:
        splits["validation"] = str(out / "val.jsonl")
    ds = datasets.load_dataset("json", data_files=splits, cache_dir=str(tmp_path / "hf"))
    assert ds["train"].num_rows == c["examples"]["train"] > 0
    assert ds.get("validation") is None or ds["validation"].num_rows == c["examples"]["val"]
    # The card's YAML header lets `datasets` read the folder itself.
    assert datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf2"))["train"].num_rows == c["examples"]["train"]
    if name == "preference":
        assert set(ds["train"].column_names) >= {"prompt", "chosen", "rejected"}
        assert "4 tasks" in card or f"from {c['preference']['tasks']} tasks" in card
    if name == "masked":
        weights = [m.get("weight") for split in ds.values() for row in split["messages"] for m in row
                   if m["role"] == "assistant"]
        assert weights.count(0) == 1 and weights.count(None) == len(weights) - 1
    if name == "messages":
        assert "dropped" not in card or "| dropped:" not in card  # salvage keeps everything here


def test_card_counts_drop_reasons(lake_uri, tmp_path):
    out = tmp_path / "drops"
    assert main(["snapshot", "--lake", lake_uri, "--out", str(out), "--no-progress", "--max-reward", "1"]) == 0
    card = (out / "README.md").read_text()
    assert "| dropped: invalid_turn | 1 |" in card and "| dropped: max_reward | 4 |" in card
    assert "| kept | 3 (train 3, val 0) |" in card
    assert '"max_reward": {\n    "reward": 1.0\n  }' in card


def test_histogram_bins():
    assert histogram([]) == []
    assert histogram([2.0, 2.0]) == [(2.0, 2.0, 2)]
    h = histogram([0.0, 0.5, 1.0, 1.0], bins=2)
    assert h == [(0.0, 0.5, 1), (0.5, 1.0, 3)]
