"""Errors the trainer raises on purpose; bad input is also a ValueError."""

from __future__ import annotations

from schemas.exceptions import RolloutLakeError

__all__ = [
    "TrainerError",
    "SnapshotError",
    "SnapshotIntegrityError",
    "EmptySnapshotError",
    "SnapshotFormatError",
    "ModelLoadError",
    "ChatTemplateError",
    "TrainerConfigError",
    "OutputDirError",
]


class TrainerError(RolloutLakeError):
    """Base class of the trainer's errors."""


class SnapshotError(TrainerError, ValueError):
    """A snapshot directory cannot be used for training."""


class SnapshotIntegrityError(SnapshotError):
    """A snapshot file is missing, extra, or does not match manifest.json (sha256, bytes, rows)."""

    exit_code = 1  # the data went bad after it was written, not the command (schemas.cli)


class EmptySnapshotError(SnapshotError):
    """The snapshot holds no training examples."""

    exit_code = 1  # a result, as with `lake snapshot`'s EmptySnapshotError (schemas.cli)


class SnapshotFormatError(SnapshotError):
    """A snapshot line is not a conversational or prompt/completion example."""


class ModelLoadError(TrainerError, ValueError):
    """The model or tokenizer named by --model cannot be found or loaded."""


class ChatTemplateError(TrainerError, ValueError):
    """The tokenizer's chat template cannot render training examples with an assistant mask."""


class TrainerConfigError(TrainerError, ValueError):
    """A config file or flag value is not usable."""


class OutputDirError(TrainerError, ValueError):
    """The output directory already holds files and --overwrite was not given."""
