"""Errors of the importers; bad input, so they also subclass ValueError."""

from __future__ import annotations

from schemas.exceptions import RolloutLakeError

__all__ = ["ImportRowError", "ImportSourceError"]


class ImportSourceError(RolloutLakeError, ValueError):
    """An importer's source (SQLite trace db, SFT JSONL file) is missing or malformed."""


class ImportRowError(RolloutLakeError, ValueError):
    """One row of an import source holds bad data; its session is skipped with this reason."""
