"""Decontamination (--exclude-tasks-from, --disjoint-from) and loss masks (--mask-invalid-turns)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lake.cli import main

from .conftest import session_events

TASKS = [f"seed-{i}" for i in range(8)]


def _snap(uri: str, out: Path, *flags: str) -> dict:
    assert main(["snapshot", "--lake", uri, "--out", str(out), "--no-progress", *flags]) == 0
    return json.loads((out / "manifest.json").read_text())


def _tasks(out: Path, name: str) -> set[str]:
    return {json.loads(x)["metadata"]["task_id"] for x in (out / name).read_text().splitlines()}


def test_excluded_tasks_never_reach_the_output(lake_factory, tmp_path, capsys):
    uri = lake_factory([e for i, t in enumerate(TASKS) for s in ("a", "b")
                        for e in session_events(f"{t}-{s}", task_id=t)])
    evals = tmp_path / "eval"
    _snap(uri, evals, "--val-fraction", "0.4")
    held_out = _tasks(evals, "val.jsonl")
    assert held_out and held_out < set(TASKS)

    # Another snapshot that would overlap the held-out tasks is refused, naming them and the fix.
    assert main(["snapshot", "--lake", uri, "--out", str(tmp_path / "x"), "--disjoint-from", str(evals)]) == 2
    err = capsys.readouterr().err
    assert f"in the val split of {evals}" in err and sorted(held_out)[0] in err
    assert "--exclude-tasks-from" in err and not (tmp_path / "x" / "train.jsonl").exists()

    # Excluding them (by the snapshot) makes it disjoint; the manifest records the set's hash.
    train = tmp_path / "train"
    m = _snap(uri, train, "--exclude-tasks-from", str(evals / "manifest.json"), "--disjoint-from", str(evals))
    assert _tasks(train, "train.jsonl") == set(TASKS) - held_out
    want = hashlib.sha256("\n".join(sorted(held_out)).encode()).hexdigest()
    assert m["decontamination"]["excluded_task_ids"] == {
        "count": len(held_out), "sha256": want, "sources": [str(evals / "manifest.json")],
        "sessions_dropped": 2 * len(held_out)}
    assert m["decontamination"]["disjoint_from"] == [
        {"manifest": str(evals), "val_task_ids": len(held_out), "val_task_ids_sha256": want}]
    assert m["counts"]["dropped"] == {"excluded_task": 2 * len(held_out)}

    # A plain list (one id per line, comments allowed) works the same, also with other filters.
    ids = tmp_path / "eval-seeds.txt"
    ids.write_text("# evaluation seeds\nseed-0\nseed-1\n\nnot-in-lake\n")
    listed = tmp_path / "listed"
    m = _snap(uri, listed, "--exclude-tasks-from", str(ids), "--best-per-task")
    assert _tasks(listed, "train.jsonl") == set(TASKS) - {"seed-0", "seed-1"}
    assert m["spec"]["exclude_task_ids"] == ["not-in-lake", "seed-0", "seed-1"]
    assert m["decontamination"]["excluded_task_ids"]["count"] == 3

    # The ids live in the spec: --from-manifest reproduces without the file.
    ids.unlink()
    assert main(["snapshot", "--from-manifest", str(listed), "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == (listed / "train.jsonl").read_bytes()
    assert main(["snapshot", "--lake", uri, "--out", str(tmp_path / "y"), "--exclude-tasks-from", str(ids)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_mask_invalid_turns_keeps_them_as_context_with_weight_zero(lake_factory, tmp_path):
    events = session_events("s", turns=4, invalid=[1])
    for e in events:
        if e["type"] == "turn" and e["turn"] == 2:
            e["reward"] = 0.0
    uri = lake_factory(events)
    # By default a session with an invalid turn is dropped (or cut with --salvage).
    assert _snap(uri, tmp_path / "plain", "--allow-empty")["counts"]["dropped"] == {"invalid_turn": 1}
    m = _snap(uri, tmp_path / "masked", "--mask-invalid-turns")
    assert m["spec"]["mask_invalid_turns"] is True and m["counts"]["sessions_kept"] == 1
    (line,) = (tmp_path / "masked" / "train.jsonl").read_text().splitlines()
    msgs = json.loads(line)["messages"]
    weights = [(m["role"], m.get("weight")) for m in msgs if m["role"] == "assistant"]
    assert weights == [("assistant", None), ("assistant", 0), ("assistant", 0), ("assistant", None)]
    assert all("weight" not in m for m in msgs if m["role"] != "assistant")
    # Turn granularity: each example's completion turn is marked the same way.
    _snap(uri, tmp_path / "turns", "--mask-invalid-turns", "--granularity", "turn", "--format", "prompt_completion")
    rows = [json.loads(x) for x in (tmp_path / "turns" / "train.jsonl").read_text().splitlines()]
    assert [r["completion"][0].get("weight") for r in rows] == [None, 0, 0, None]
