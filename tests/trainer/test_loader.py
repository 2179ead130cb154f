"""Snapshot integrity comes first: every file is checked against manifest.json."""

from __future__ import annotations

import json

import pytest

from trainer.exceptions import EmptySnapshotError, SnapshotFormatError, SnapshotIntegrityError
from trainer.loader import load_snapshot, verify_snapshot

from .conftest import write_snapshot


def test_a_correct_snapshot_loads_with_its_manifest(snapshot_factory):
    path = snapshot_factory(n_train=5, n_val=2)

    snapshot = load_snapshot(path)

    assert len(snapshot.train) == 5 and len(snapshot.val) == 2
    assert snapshot.train[0].source == "train.jsonl:1"
    assert snapshot.manifest.table_versions["sessions"] == 12 and snapshot.manifest.counts.examples.val == 2
    assert len(snapshot.manifest_sha256) == 64


def test_a_modified_file_is_refused(snapshot_factory):
    path = snapshot_factory()
    with (path / "train.jsonl").open("a") as fh:
        fh.write('{"messages": []}\n')

    with pytest.raises(SnapshotIntegrityError, match="train.jsonl does not match manifest.json: sha256"):
        verify_snapshot(path)


def test_a_missing_listed_file_is_refused(snapshot_factory):
    path = snapshot_factory()
    (path / "val.jsonl").unlink()

    with pytest.raises(SnapshotIntegrityError, match="val.jsonl is listed in manifest.json but missing"):
        verify_snapshot(path)


def test_an_unlisted_jsonl_file_is_refused(snapshot_factory):
    path = snapshot_factory(n_val=None)
    (path / "val.jsonl").write_text("{}\n")

    with pytest.raises(SnapshotIntegrityError, match=r"\['val.jsonl'\] which manifest.json does not list"):
        verify_snapshot(path)


def test_a_missing_manifest_is_refused(snapshot_factory):
    path = snapshot_factory()
    (path / "manifest.json").unlink()

    with pytest.raises(SnapshotIntegrityError, match="manifest.json is missing"):
        verify_snapshot(path)


def test_an_unknown_format_version_is_refused(snapshot_factory):
    path = snapshot_factory()
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))

    with pytest.raises(SnapshotFormatError, match="format_version 2"):
        verify_snapshot(path)


def test_a_manifest_that_breaks_the_contract_is_named_by_field(snapshot_factory):
    path = snapshot_factory()
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["val.jsonl"]["bytes"] = "many"
    (path / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(SnapshotIntegrityError, match=r"manifest.json `files.val.jsonl.bytes` Input should be a valid integer"):
        verify_snapshot(path)


def test_a_manifest_listing_a_path_is_refused(snapshot_factory):
    path = snapshot_factory()
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["../train.jsonl"] = manifest["files"]["train.jsonl"]
    (path / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(SnapshotIntegrityError, match="lists '../train.jsonl'; only plain file names are allowed"):
        verify_snapshot(path)


def test_an_empty_snapshot_is_refused(tmp_path):
    path = write_snapshot(tmp_path / "empty", [])

    with pytest.raises(EmptySnapshotError, match="no training examples"):
        load_snapshot(path)


def test_a_row_of_unknown_shape_is_named(tmp_path):
    path = write_snapshot(tmp_path / "odd", [{"text": "hello"}])

    with pytest.raises(SnapshotFormatError, match="train.jsonl:1 is neither conversational"):
        load_snapshot(path)
