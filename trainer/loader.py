"""Read a snapshot directory only after checking every file against its manifest.json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from schemas.exceptions import ManifestError, ManifestVersionError
from schemas.manifest import MANIFEST_FILE, TRAIN_FILE, VAL_FILE, SnapshotManifest, parse_manifest
from trainer.exceptions import (
    EmptySnapshotError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotIntegrityError,
)

__all__ = ["Snapshot", "SnapshotRow", "verify_snapshot", "load_snapshot"]


class SnapshotRow(NamedTuple):
    """One JSONL example and where it came from ("train.jsonl:12"), for error messages."""

    source: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot: its manifest (lineage back to Delta versions) and its examples."""

    path: Path
    manifest: SnapshotManifest
    manifest_sha256: str
    train: list[SnapshotRow]
    val: list[SnapshotRow] = field(default_factory=list)


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _count_rows(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def verify_snapshot(path: str | Path) -> tuple[SnapshotManifest, str]:
    """Check manifest.json and every file it lists; return the manifest and the manifest's sha256.

    Refuses missing files, sha256/byte/row mismatches, and JSONL files the manifest does not list.
    """
    root = Path(path)
    if not root.is_dir():
        raise SnapshotError(f"snapshot directory {str(root)!r} does not exist; pass the --out DIR of `python -m lake snapshot`")
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise SnapshotIntegrityError(f"{manifest_path} is missing; is {str(root)!r} a snapshot written by `python -m lake snapshot`?")
    raw = manifest_path.read_bytes()
    try:
        manifest = parse_manifest(raw, source=str(manifest_path))
    except ManifestVersionError as exc:
        raise SnapshotFormatError(str(exc)) from exc
    except ManifestError as exc:
        raise SnapshotIntegrityError(str(exc)) from exc
    unlisted = sorted(p.name for p in root.glob("*.jsonl") if p.name not in manifest.files)
    if unlisted:
        raise SnapshotIntegrityError(f"{root} holds {unlisted} which manifest.json does not list; refusing unverified data")
    for name, entry in manifest.files.items():
        file_path = root / name
        if not file_path.is_file():
            raise SnapshotIntegrityError(f"{file_path} is listed in manifest.json but missing")
        actual = _sha256(file_path)
        if actual != entry.sha256.lower():
            raise SnapshotIntegrityError(
                f"{file_path} does not match manifest.json: sha256 {actual[:12]}..., expected {entry.sha256[:12]}...; "
                "the snapshot was modified or corrupted, cut it again with `python -m lake snapshot`"
            )
        size = file_path.stat().st_size
        if entry.bytes != size:
            raise SnapshotIntegrityError(f"{file_path} has {size} bytes, manifest.json says {entry.bytes}")
        if entry.rows is not None and name.endswith(".jsonl") and entry.rows != _count_rows(file_path):
            raise SnapshotIntegrityError(f"{file_path} has {_count_rows(file_path)} rows, manifest.json says {entry.rows}")
    return manifest, hashlib.sha256(raw).hexdigest()


def _read_jsonl(path: Path) -> list[SnapshotRow]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            source = f"{path.name}:{lineno}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SnapshotFormatError(f"{source} is not valid JSON ({exc.msg})") from exc
            if not isinstance(data, dict) or not ("messages" in data or ("prompt" in data and "completion" in data)):
                raise SnapshotFormatError(
                    f"{source} is neither conversational ({{'messages': [...]}}) nor prompt/completion "
                    "({'prompt': [...], 'completion': [...]})"
                )
            rows.append(SnapshotRow(source, data))
    return rows


def load_snapshot(path: str | Path) -> Snapshot:
    """Verify, then read train.jsonl (and val.jsonl when present); refuse an empty snapshot."""
    root = Path(path)
    manifest, manifest_sha256 = verify_snapshot(root)
    train = _read_jsonl(root / TRAIN_FILE)
    if not train:
        raise EmptySnapshotError(
            f"snapshot {str(root)!r} has no training examples ({TRAIN_FILE} is empty); loosen the snapshot filters"
        )
    val = _read_jsonl(root / VAL_FILE) if VAL_FILE in manifest.files else []
    return Snapshot(path=root, manifest=manifest, manifest_sha256=manifest_sha256, train=train, val=val)
