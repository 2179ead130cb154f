"""Decontamination: task_ids that must never reach a snapshot, and checks against other snapshots.

`--exclude-tasks-from` takes a plain list (one task_id per line, or a JSON list) or another
snapshot (its manifest.json or directory), whose val split is the held-out set. The ids go into
the spec, so `--from-manifest` reproduces without the file, and the manifest records their sha256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lake.exceptions import FilterSpecError
from schemas.manifest import MANIFEST_FILE, VAL_FILE

__all__ = ["task_ids_from", "val_task_ids", "ids_sha256", "check_disjoint"]


def ids_sha256(ids: Iterable[str]) -> str:
    """sha256 of the sorted, newline-joined set: the same set always hashes the same."""
    return hashlib.sha256("\n".join(sorted(set(ids))).encode()).hexdigest()


def _is_manifest(path: Path) -> bool:
    return path.is_dir() or path.name == MANIFEST_FILE


def val_task_ids(manifest: str | Path) -> set[str]:
    """The task_ids of a snapshot's val split (read from its val.jsonl's metadata)."""
    path = Path(manifest)
    root = path if path.is_dir() else path.parent
    if not (root / MANIFEST_FILE).is_file():
        raise FilterSpecError(f"{manifest} is not a snapshot: no manifest.json in {root}")
    val = root / VAL_FILE
    if not val.is_file():
        raise FilterSpecError(f"snapshot {root} has no val.jsonl; its val split cannot be read")
    ids = set()
    with open(val, "rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                task = json.loads(line).get("metadata", {}).get("task_id")
            except (json.JSONDecodeError, AttributeError) as exc:
                raise FilterSpecError(f"{val}:{n} is not a snapshot line: {exc}") from exc
            if task is not None:
                ids.add(str(task))
    return ids


def task_ids_from(source: str) -> set[str]:
    """Task ids listed in `source`: a snapshot (its val split), a JSON list, or one id per line."""
    path = Path(source)
    if not path.exists():
        raise FilterSpecError(f"--exclude-tasks-from {source} does not exist")
    if _is_manifest(path):
        return val_task_ids(path)
    text = path.read_text()
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FilterSpecError(f"--exclude-tasks-from {source} is not a JSON list: {exc}") from exc
        return {str(x) for x in data if x is not None and str(x).strip()}
    return {line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")}


def check_disjoint(kept: set[str], manifests: Iterable[str]) -> list[dict[str, Any]]:
    """Raise if a kept task_id is in another snapshot's val split; returns what was checked."""
    checked = []
    for manifest in manifests:
        held_out = val_task_ids(manifest)
        overlap = sorted(kept & held_out)
        if overlap:
            shown = ", ".join(overlap[:5]) + (f" (and {len(overlap) - 5} more)" if len(overlap) > 5 else "")
            raise FilterSpecError(
                f"{len(overlap)} kept task_id(s) are in the val split of {manifest}: {shown}; "
                f"add `--exclude-tasks-from {manifest}` to drop them"
            )
        checked.append({"manifest": str(manifest), "val_task_ids": len(held_out),
                        "val_task_ids_sha256": ids_sha256(held_out)})
    return checked
