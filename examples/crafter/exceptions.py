"""Errors of the Crafter task app; bad flags and options also subclass ValueError (exit 2)."""

from __future__ import annotations

from schemas.exceptions import RolloutLakeError

__all__ = ["CrafterConfigError"]


class CrafterConfigError(RolloutLakeError, ValueError):
    """A task-app option is wrong (seeds, model path, turn budget); the message names it and the fix."""
