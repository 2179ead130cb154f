"""The SFT job: fine-tune a model on a rollout-lake snapshot with TRL (`python -m trainer`).

The tool-call text convention it trains on is a contract with task apps: `schemas.toolcalls`.
"""

from trainer.exceptions import (
    ChatTemplateError,
    EmptySnapshotError,
    ModelLoadError,
    OutputDirError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotIntegrityError,
    TrainerConfigError,
    TrainerError,
)
from trainer.loader import Snapshot, load_snapshot, verify_snapshot

__all__ = [
    "ChatTemplateError",
    "EmptySnapshotError",
    "ModelLoadError",
    "OutputDirError",
    "Snapshot",
    "SnapshotError",
    "SnapshotFormatError",
    "SnapshotIntegrityError",
    "TrainerConfigError",
    "TrainerError",
    "load_snapshot",
    "verify_snapshot",
]
