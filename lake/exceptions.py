"""Errors of the lake's query layer: one base, bad input also a ValueError."""

from __future__ import annotations

from schemas.exceptions import RolloutLakeError

__all__ = [
    "LakeError",
    "LakeNotFoundError",
    "TableVersionError",
    "ReadOnlyQueryError",
    "QueryError",
    "FilterSpecError",
    "OutputExistsError",
    "ManifestError",
    "ReproductionMismatchError",
    "EmptySnapshotError",
    "WaitTimeoutError",
    "TopicNotFoundError",
    "StorageConfigError",
]


class LakeError(RolloutLakeError):
    """Base class of the errors raised by the lake's readers, snapshots and maintenance."""


class LakeNotFoundError(LakeError, ValueError):
    """LAKE_URI (or --lake) does not hold the lake's Delta tables."""


class TableVersionError(LakeError, ValueError):
    """A pinned table version cannot be read (not written yet, or its files were vacuumed)."""


class ReadOnlyQueryError(LakeError, ValueError):
    """`lake sql` got a statement that could write, attach or change settings."""


class StorageConfigError(LakeError, ValueError):
    """LAKE_URI or the object-store settings cannot reach a lake."""


class QueryError(LakeError, ValueError):
    """DuckDB refused a query (syntax, unknown column, ...); the message is DuckDB's."""


class FilterSpecError(LakeError, ValueError):
    """A snapshot filter or option has a bad value or an unknown key."""


class OutputExistsError(LakeError, ValueError):
    """The snapshot's output directory is not empty and --force was not given."""


class ManifestError(LakeError, ValueError):
    """A manifest.json is missing, unreadable or not format_version 1."""


class ReproductionMismatchError(LakeError):
    """A snapshot reproduced from a manifest does not match the manifest's sha256 sums."""


class EmptySnapshotError(LakeError, ValueError):
    """The filters kept no example; the message counts what each filter dropped."""

    exit_code = 1  # a result, not a malformed command (schemas.cli)


class WaitTimeoutError(LakeError):
    """`lake wait` gave up before the lake caught up."""


class TopicNotFoundError(LakeError, ValueError):
    """`lake wait` was pointed at a topic the broker does not have."""
