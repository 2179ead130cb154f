"""Small snapshots write through Python strings, big ones from Arrow buffers: the same bytes."""

from __future__ import annotations

import json

import pytest

import lake.snapshot as snapshot
from lake.cli import main

from .conftest import session_events


@pytest.mark.parametrize("flags", [
    ["--val-fraction", "0.5"],
    ["--granularity", "turn", "--context-turns", "1", "--format", "prompt_completion", "--val-fraction", "0.5"],
    ["--mask-invalid-turns", "--salvage"],
])
def test_python_and_arrow_writers_agree(lake_factory, tmp_path, monkeypatch, flags):
    uri = lake_factory([e for i in range(6) for e in session_events(f"s{i}", turns=3, task_id=f"t{i}",
                                                                         invalid=[1] if i == 2 else [])])
    outs = {}
    for name, small_rows in (("python", 10**12), ("arrow", -1)):
        monkeypatch.setattr(snapshot, "SMALL_ROWS", small_rows)
        out = tmp_path / name
        assert main(["snapshot", "--lake", uri, "--out", str(out), "--no-progress", *flags]) == 0
        outs[name] = out
    for file in ("train.jsonl", "val.jsonl", "stats.json"):
        assert (outs["python"] / file).read_bytes() == (outs["arrow"] / file).read_bytes(), file
    manifests = [json.loads((o / "manifest.json").read_text()) for o in outs.values()]
    assert manifests[0]["files"] == manifests[1]["files"] and manifests[0]["counts"] == manifests[1]["counts"]
