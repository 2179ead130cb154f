"""Small snapshots write through Python strings, big ones from Arrow buffers in ordered ranges: the same bytes."""

from __future__ import annotations

import json

import pytest

import lake.lines as lines
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
    # "ranges": every line its own ordered range (what a snapshot bigger than memory does).
    for name, small_rows, range_bytes in (("python", 10**12, lines.RANGE_BYTES), ("arrow", -1, lines.RANGE_BYTES),
                                          ("ranges", -1, 1)):
        monkeypatch.setattr(lines, "SMALL_ROWS", small_rows)
        monkeypatch.setattr(lines, "RANGE_BYTES", range_bytes)
        out = tmp_path / name
        assert main(["snapshot", "--lake", uri, "--out", str(out), "--no-progress", *flags]) == 0
        outs[name] = out
    for other in ("arrow", "ranges"):
        for file in ("train.jsonl", "val.jsonl", "stats.json"):
            assert (outs["python"] / file).read_bytes() == (outs[other] / file).read_bytes(), (other, file)
    manifests = [json.loads((o / "manifest.json").read_text()) for o in outs.values()]
    assert all(m["files"] == manifests[0]["files"] and m["counts"] == manifests[0]["counts"] for m in manifests)
