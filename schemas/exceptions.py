"""The project's exception hierarchy: one base, bad input also a ValueError."""

from __future__ import annotations

__all__ = ["RolloutLakeError", "EventValidationError", "EventTooLargeError"]


class RolloutLakeError(Exception):
    """Base class of every error this project raises on purpose."""


class EventValidationError(RolloutLakeError, ValueError):
    """An event does not match wire format v1; the message names field, value and fix."""


class EventTooLargeError(EventValidationError):
    """An event's encoded size is over the limit the broker and worker accept."""
