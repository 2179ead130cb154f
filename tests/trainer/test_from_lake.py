"""The whole data path into the trainer: events -> lake (worker code) -> `lake snapshot` -> TRL."""

from __future__ import annotations

import hashlib
import json

from lake.cli import main as lake_main
from streams.offline import write_events
from streams.synthetic import make_sessions
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
