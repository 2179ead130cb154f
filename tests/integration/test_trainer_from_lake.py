"""The whole data path into the trainer: events -> lake (worker code) -> `lake snapshot` -> TRL."""

from __future__ import annotations

import hashlib
import json

from lake.cli import main as lake_main
from streams.devtools.synthetic import make_sessions
from streams.worker.offline import write_events
from trainer.__main__ import main as trainer_main
from trainer.report import SUMMARY_FILE


def test_trainer_runs_on_a_snapshot_cut_by_the_real_snapshot_code(tiny_model_dir, tmp_path):
    lake = str(tmp_path / "lake")
    write_events(lake, [e for s in make_sessions(6, 2, seed=5, obs_chars=120) for e in s.events])
    snapshot = tmp_path / "snap"
    assert lake_main([
        "snapshot", "--lake", lake, "--out", str(snapshot), "--granularity", "turn", "--salvage",
        "--val-fraction", "0.3", "--no-progress",
    ]) == 0
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["files"]["train.jsonl"]["rows"] > 0
    output = tmp_path / "run"
    assert trainer_main([
        "--snapshot", str(snapshot), "--model", str(tiny_model_dir), "--output", str(output),
        "--max-steps", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
        "--max_length", "512", "--logging_steps", "1", "--disable_tqdm", "true",
    ]) == 0
    summary = json.loads((output / SUMMARY_FILE).read_text())
    assert summary["manifest_sha256"] == hashlib.sha256((snapshot / "manifest.json").read_bytes()).hexdigest()
    assert summary["manifest"]["table_versions"] == manifest["table_versions"]
    assert summary["steps"] == 2


def test_masked_invalid_turns_from_a_real_snapshot_get_no_loss(tiny_tokenizer, tmp_path):
    """`lake snapshot --mask-invalid-turns` -> "weight": 0 on the invalid turn -> mask 0 in the trainer."""
    from trainer.data import build_examples, to_chat
    from trainer.loader import load_snapshot

    def ev(kind, n, **body):
        return {"schema_version": 1, "type": kind, "event_id": f"m-{n}", "session_id": "m1",
                "ts": f"2026-11-01T10:00:0{n}+00:00", "metadata": {}, **body}

    replies = ["GOOD-ZERO", "BAD-ONE", "GOOD-TWO"]
    events = [ev("session_start", 0, env_name="crafter", task_id="t1", split="train")]
    for t, reply in enumerate(replies):
        events.append(ev("turn", t + 1, turn=t, reward=1.0, valid=reply.startswith("GOOD"), messages=[
            {"role": "user", "content": f"obs {t}"}, {"role": "assistant", "content": reply}]))
    events += [ev("session_end", 5, status="terminated", num_turns=3),
               ev("outcome_reward", 6, total_reward=2.0, objective="reward", source="env")]
    lake = str(tmp_path / "lake")
    write_events(lake, events)
    snapshot = tmp_path / "snap"
    assert lake_main(["snapshot", "--lake", lake, "--out", str(snapshot), "--mask-invalid-turns", "--no-progress"]) == 0

    rows = load_snapshot(snapshot).train
    assert len(rows) == 1
    weights = [(m["content"], m.get("weight")) for m in rows[0].data["messages"] if m["role"] == "assistant"]
    assert weights == [("GOOD-ZERO", None), ("BAD-ONE", 0), ("GOOD-TWO", None)]
    columns, report = build_examples(tiny_tokenizer, rows, max_length=None)
    ids, mask = columns["input_ids"][0], columns["assistant_masks"][0]
    assert "BAD-ONE" in tiny_tokenizer.decode(ids)  # kept as context
    assert tiny_tokenizer.decode([t for t, m in zip(ids, mask) if m]) == "GOOD-ZERO<|im_end|>\nGOOD-TWO<|im_end|>\n"
    assert report.no_loss_turns == 1
    assert to_chat(rows[0]).tool_call_turns == ()
