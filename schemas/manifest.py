"""Snapshot format v1: the files `lake snapshot` writes and the manifest.json the trainer checks.

One snapshot directory holds train.jsonl and val.jsonl (one example per line), stats.json, a
README.md dataset card, and manifest.json: the lineage (lake, Delta table versions, code, spec),
the selection's counts, and the sha256/bytes/rows of every data file. The card is not listed:
it names the run's time and code revision, and only the data is checked.

The lake writes the manifest through `SnapshotManifest.to_json()` and reads it back for
`--from-manifest`; the trainer reads it with `parse_manifest` before it opens any data file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, field_validator

from schemas.exceptions import ManifestError, ManifestVersionError

__all__ = [
    "CARD_FILE",
    "DATA_FILES",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "STATS_FILE",
    "TRAIN_FILE",
    "VAL_FILE",
    "Decontamination",
    "DisjointCheck",
    "ExcludedTasks",
    "FileEntry",
    "PreferenceCounts",
    "SnapshotCounts",
    "SnapshotManifest",
    "SplitCounts",
    "parse_manifest",
]

FORMAT_VERSION = 1
TRAIN_FILE = "train.jsonl"
VAL_FILE = "val.jsonl"
STATS_FILE = "stats.json"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"
DATA_FILES = (TRAIN_FILE, VAL_FILE, STATS_FILE)
"""The files a snapshot lists in `files`, in the order it lists them."""

_FIX = "the manifest was edited or not written by `python -m lake snapshot`; cut the snapshot again"


def _iso_timestamp(value: str) -> str:
    # Kept as the string written, so a manifest read and dumped again is the same JSON.
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 timestamp with a UTC offset") from None
    if parsed.tzinfo is None:
        raise ValueError("must be an ISO 8601 timestamp with a UTC offset")
    return value


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
Timestamp = Annotated[str, AfterValidator(_iso_timestamp)]


def _absent_not_null(schema: dict[str, Any]) -> None:
    # Optional parts are left out when unused, never written as null; the schema says so.
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf", [])
        if {"type": "null"} in options:
            rest = [option for option in prop.pop("anyOf") if option != {"type": "null"}]
            prop.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
            prop.pop("default", None)


class _Part(BaseModel):
    # Readers accept fields added by newer writers of the same format_version and keep them.
    model_config = ConfigDict(extra="allow", json_schema_extra=_absent_not_null)


class FileEntry(_Part):
    """One data file as written: checked before a byte of it is read."""

    sha256: Sha256
    bytes: NonNegativeInt
    rows: NonNegativeInt | None = None
    """Non-empty lines of a JSONL file (stats.json: 1)."""


class SplitCounts(_Part):
    train: NonNegativeInt
    val: NonNegativeInt


class PreferenceCounts(_Part):
    """`--format preference`: chosen/rejected pairs built, and why tasks gave none."""

    pairs: NonNegativeInt
    pairs_by_split: SplitCounts
    tasks: NonNegativeInt
    sessions_paired: NonNegativeInt
    not_paired: dict[str, NonNegativeInt]


class SnapshotCounts(_Part):
    """What the selection kept, and each drop reason with its count of sessions."""

    sessions_total: NonNegativeInt
    sessions_kept: NonNegativeInt
    sessions_train: NonNegativeInt
    sessions_val: NonNegativeInt
    dropped: dict[str, NonNegativeInt]
    examples: SplitCounts
    preference: PreferenceCounts | None = None
    messages: NonNegativeInt


class ExcludedTasks(_Part):
    """`--exclude-tasks-from`: the excluded task_ids travel in the spec; here their set's hash."""

    count: NonNegativeInt
    sha256: Sha256
    sources: list[str]
    sessions_dropped: NonNegativeInt


class DisjointCheck(_Part):
    """`--disjoint-from`: another snapshot whose val split the kept task_ids were checked against."""

    manifest: str
    val_task_ids: NonNegativeInt
    val_task_ids_sha256: Sha256


class Decontamination(_Part):
    excluded_task_ids: ExcludedTasks | None = None
    disjoint_from: list[DisjointCheck] | None = None


class SnapshotManifest(_Part):
    """manifest.json. Lineage: lake_uri, table_versions, code_version and spec reproduce the files.

    `spec` is the full `lake.spec.SnapshotSpec.to_dict()` (every key, defaults included); its
    keys are the lake's to define, so it stays a mapping here.
    """

    format_version: Literal[1]
    created_at: Timestamp
    code_version: str
    lake_uri: str
    table_versions: dict[str, NonNegativeInt]
    spec: dict[str, Any]
    counts: SnapshotCounts
    files: dict[str, FileEntry]
    decontamination: Decontamination | None = None

    @field_validator("files")
    @classmethod
    def _plain_names_with_train(cls, files: dict[str, FileEntry]) -> dict[str, FileEntry]:
        for name in files:
            if name in ("", ".", "..") or PurePosixPath(name).name != name or "\\" in name:
                raise ValueError(f"lists {name!r}; only plain file names are allowed")
        if TRAIN_FILE not in files:
            raise ValueError(f"lists no {TRAIN_FILE}")
        return files

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON values: absent optional parts stay absent."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self) -> str:
        """manifest.json's text (2-space indent, keys in the order above, trailing newline)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_manifest(data: bytes | str | Mapping[str, Any], *, source: str = MANIFEST_FILE) -> SnapshotManifest:
    """Validate manifest.json's bytes (or its parsed object); one-line ManifestError naming the field.

    An unknown format_version raises ManifestVersionError before anything else is checked.
    """
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}); {_FIX}") from exc
    if not isinstance(data, Mapping):
        raise ManifestError(f"{source} holds a JSON {type(data).__name__}, expected an object; {_FIX}")
    version = data.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ManifestVersionError(
            f"{source} has format_version {version!r}; this code reads format_version {FORMAT_VERSION} "
            "(cut the snapshot again with this version of `python -m lake snapshot`)"
        )
    try:
        return SnapshotManifest.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            detail = f"has no `{_location(first['loc'])}`"
        elif isinstance(first["input"], (dict, list)):  # the checks on `files` name the bad entry themselves
            detail = f"`{_location(first['loc'])}` {message}"
        else:
            got = repr(first["input"])
            detail = f"`{_location(first['loc'])}` {message} (got {got[:60] + '...' if len(got) > 60 else got})"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ManifestError(f"{source} {detail}{more}; {_FIX}") from exc
