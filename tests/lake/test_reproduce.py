"""Reproduction from a manifest is byte-identical after new data arrived; maintenance is safe."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from lake import LakeWriter, current_versions, maintain
from lake.cli import main

from .conftest import BASE_TS, TOPIC, judgment_event, reward_event, session_events


def _bytes(d):
    return {n: (d / n).read_bytes() for n in ("train.jsonl", "val.jsonl", "stats.json")}


def test_from_manifest_is_byte_identical_after_new_data(lake_factory, tmp_path, capsys):
    uri = lake_factory(session_events("a", reward=1.0, task_id="t1") + session_events("b", reward=2.0, task_id="t2"))
    flags = ["--min-reward", "1", "--granularity", "turn", "--context-turns", "1", "--val-fraction", "0.5"]
    assert main(["snapshot", "--lake", uri, "--out", str(tmp_path / "v1"), "--no-progress", *flags]) == 0
    first = _bytes(tmp_path / "v1")
    # More data: new sessions, a late reward and judgment on an old one, a session_end re-merge.
    lake_factory(session_events("c", reward=5.0)
                 + [reward_event("a", 0.0, ts=BASE_TS + timedelta(days=1)), judgment_event("b", "acceptable")],
                 lake=uri)
    manifest = tmp_path / "v1" / "manifest.json"
    assert main(["snapshot", "--from-manifest", str(manifest), "--out", str(tmp_path / "v2"), "--no-progress"]) == 0
    assert "matches" in capsys.readouterr().err
    assert _bytes(tmp_path / "v2") == first
    m1, m2 = json.loads(manifest.read_text()), json.loads((tmp_path / "v2" / "manifest.json").read_text())
    assert m2["table_versions"] == m1["table_versions"] != current_versions(uri)
    assert m2["spec"] == m1["spec"] and m2["files"] == m1["files"]
    # The same flags today see the new truth.
    assert main(["snapshot", "--lake", uri, "--out", str(tmp_path / "now"), "--no-progress", *flags]) == 0
    assert _bytes(tmp_path / "now")["train.jsonl"] + _bytes(tmp_path / "now")["val.jsonl"] != \
        first["train.jsonl"] + first["val.jsonl"]


def test_from_manifest_refuses_filter_flags_and_detects_mismatch(lake_factory, tmp_path, capsys):
    uri = lake_factory(session_events("a"))
    assert main(["snapshot", "--lake", uri, "--out", str(tmp_path / "v1"), "--no-progress"]) == 0
    manifest_path = tmp_path / "v1" / "manifest.json"
    assert main(["snapshot", "--from-manifest", str(manifest_path), "--out", str(tmp_path / "x"),
                 "--min-reward", "1"]) == 2
    assert "drop --config and the filter flags (--min-reward)" in capsys.readouterr().err
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["train.jsonl"]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    assert main(["snapshot", "--from-manifest", str(manifest_path), "--out", str(tmp_path / "v2"),
                 "--no-progress"]) == 1  # a failure, not bad input (schemas.cli)
    assert "differs from" in capsys.readouterr().err


def test_maintain_compacts_checkpoints_and_keeps_offsets_and_time_travel(lake_factory, tmp_path, capsys):
    uri = lake_factory(session_events("a"))
    assert main(["snapshot", "--lake", uri, "--out", str(tmp_path / "v1"), "--no-progress"]) == 0
    for i in range(4):
        lake_factory(session_events(f"s{i}"), lake=uri)
    writer = LakeWriter(uri)
    offsets_before = writer.committed_offsets("messages", [(TOPIC, 0)])
    files_before = len(writer.table("messages").file_uris())
    assert main(["maintain", "--lake", uri, "--format", "json"]) == 0
    report = {r["table"]: r for r in json.loads(capsys.readouterr().out)}
    assert report["messages"]["files_before"] == files_before == 5
    assert report["messages"]["files_after"] == 1 and report["messages"]["compacted_removed"] == 5
    assert report["messages"]["checkpoint_version"] == report["messages"]["version_after"]
    assert report["messages"]["vacuumed_files"] == 0  # younger than the 7-day retention
    assert not any(r["errors"] for r in report.values())
    # The worker's exactly-once progress survives compaction and checkpoints.
    assert LakeWriter(uri).committed_offsets("messages", [(TOPIC, 0)]) == offsets_before
    # Snapshots made before maintenance still reproduce.
    assert main(["snapshot", "--from-manifest", str(tmp_path / "v1" / "manifest.json"),
                 "--out", str(tmp_path / "v2"), "--no-progress"]) == 0
    assert _bytes(tmp_path / "v2") == _bytes(tmp_path / "v1")


def test_maintain_refuses_short_retention_without_force(lake_factory):
    uri = lake_factory(session_events("a"))
    with pytest.raises(ValueError, match="under the safe 168 h"):
        maintain(uri, retention_hours=1)
    report = maintain(uri, retention_hours=0, allow_short_retention=True, dry_run=True)
    assert [r.table for r in report] == ["sessions", "turns", "messages", "rewards", "dead_letters"]
