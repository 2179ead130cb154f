"""Snapshot format v1: manifest.json as `lake snapshot` writes it, read back field by field."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from schemas import ManifestError, ManifestVersionError, SnapshotManifest, parse_manifest

SHA = "5533cd8946a2c4c2524333a8e597819c6b59eb810fe44e9bb22cebfe87f9af6f"
EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# Written by `python -m lake snapshot --exclude-tasks-from ... --disjoint-from ...` (spec trimmed).
WRITTEN = """{
  "format_version": 1,
  "created_at": "2026-12-01T02:11:39.095157+00:00",
  "code_version": "0.1.0+ge30298e3a60e",
  "lake_uri": "/tmp/lake32",
  "table_versions": {
    "sessions": 1,
    "turns": 1,
    "messages": 1,
    "rewards": 1,
    "dead_letters": 0
  },
  "spec": {
    "min_reward": {},
    "min_achievements": null,
    "exclude_task_ids": [
      "seed-1",
      "seed-2"
    ],
    "val_fraction": 0.0
  },
  "counts": {
    "sessions_total": 16,
    "sessions_kept": 10,
    "sessions_train": 10,
    "sessions_val": 0,
    "dropped": {
      "excluded_task": 6
    },
    "examples": {
      "train": 10,
      "val": 0
    },
    "messages": 60
  },
  "files": {
    "train.jsonl": {
      "sha256": "SHA",
      "bytes": 9670,
      "rows": 10
    },
    "val.jsonl": {
      "sha256": "EMPTY_SHA",
      "bytes": 0,
      "rows": 0
    },
    "stats.json": {
      "sha256": "SHA",
      "bytes": 836,
      "rows": 1
    }
  },
  "decontamination": {
    "excluded_task_ids": {
      "count": 2,
      "sha256": "SHA",
      "sources": [
        "/tmp/eval/manifest.json"
      ],
      "sessions_dropped": 6
    },
    "disjoint_from": [
      {
        "manifest": "/tmp/eval",
        "val_task_ids": 2,
        "val_task_ids_sha256": "SHA"
      }
    ]
  }
}
""".replace("EMPTY_SHA", EMPTY_SHA).replace("SHA", SHA)


def written() -> dict:
    return json.loads(WRITTEN)


def test_a_written_manifest_reads_into_typed_fields_and_dumps_to_the_same_bytes():
    manifest = parse_manifest(WRITTEN.encode())

    assert manifest.table_versions["messages"] == 1 and manifest.counts.examples.train == 10
    assert manifest.files["train.jsonl"].rows == 10 and manifest.files["val.jsonl"].sha256 == EMPTY_SHA
    assert manifest.decontamination.disjoint_from[0].val_task_ids == 2
    assert manifest.spec["min_achievements"] is None
    assert manifest.to_json() == WRITTEN


def test_absent_optional_parts_stay_absent_and_unknown_fields_are_kept():
    data = written()
    del data["decontamination"], data["files"]["stats.json"]["rows"]
    data["future_field"] = {"x": 1}

    dumped = parse_manifest(data).to_dict()

    assert dumped == data and list(dumped)[-1] == "future_field"


def test_preference_counts_keep_their_place():
    data = written()
    messages = data["counts"].pop("messages")
    data["counts"]["preference"] = {"pairs": 3, "pairs_by_split": {"train": 3, "val": 0}, "tasks": 2,
                                    "sessions_paired": 5, "not_paired": {"single_rollout_tasks": 1}}
    data["counts"]["messages"] = messages

    assert parse_manifest(data).to_json() == json.dumps(data, indent=2) + "\n"


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda m: m["files"]["train.jsonl"].update(sha256="abc"),
         "manifest.json `files.train.jsonl.sha256` String should match pattern '^[0-9a-fA-F]{64}$' (got 'abc')"),
        (lambda m: m["files"]["val.jsonl"].update(rows=-1),
         "`files.val.jsonl.rows` Input should be greater than or equal to 0 (got -1)"),
        (lambda m: m["files"].pop("train.jsonl"), "`files` lists no train.jsonl"),
        (lambda m: m["files"].update({"../x.jsonl": m["files"]["val.jsonl"]}),
         "`files` lists '../x.jsonl'; only plain file names are allowed"),
        (lambda m: m.pop("table_versions"), "manifest.json has no `table_versions`"),
        (lambda m: m.update(created_at="yesterday"),
         "`created_at` must be an ISO 8601 timestamp with a UTC offset (got 'yesterday')"),
        (lambda m: m["counts"]["dropped"].update(limit="2x"), "`counts.dropped.limit` Input should be a valid integer"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_the_field(edit, error):
    data = written()
    edit(data)

    with pytest.raises(ManifestError) as info:
        parse_manifest(json.dumps(data))

    message = str(info.value)
    assert error in message and "\n" not in message
    assert message.endswith("cut the snapshot again")


def test_format_version_and_json_errors_come_first():
    with pytest.raises(ManifestVersionError, match="snap/manifest.json has format_version 2; this code reads format_version 1"):
        parse_manifest(json.dumps({**written(), "format_version": 2, "files": None}), source="snap/manifest.json")
    with pytest.raises(ManifestError, match=r"is not valid JSON \(Expecting value at line 1\)"):
        parse_manifest(b"not json")
    with pytest.raises(ManifestError, match="holds a JSON list, expected an object"):
        parse_manifest(b"[]")
    assert issubclass(ManifestError, ValueError)


def test_the_model_is_what_the_published_schema_describes():
    schema = SnapshotManifest.model_json_schema()

    assert schema["required"] == ["format_version", "created_at", "code_version", "lake_uri", "table_versions",
                                  "spec", "counts", "files"]


@pytest.mark.parametrize(("imports", "forbidden"), [("trainer.loader, trainer.data", "lake"),
                                                    ("lake.export, lake.card", "trainer")])
def test_lake_and_trainer_share_the_contract_without_importing_each_other(imports, forbidden):
    code = (f"import sys, {imports}; bad = [m for m in sys.modules if m.split('.')[0] == {forbidden!r}]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
