"""The project's exception hierarchy: one base, bad input also a ValueError."""

from __future__ import annotations

__all__ = [
    "RolloutLakeError",
    "EventValidationError",
    "EventTooLargeError",
    "ManifestError",
    "ManifestVersionError",
    "ToolCallParseError",
]


class RolloutLakeError(Exception):
    """Base class of every error this project raises on purpose."""


class EventValidationError(RolloutLakeError, ValueError):
    """An event does not match wire format v1; the message names field, value and fix."""


class EventTooLargeError(EventValidationError):
    """An event's encoded size is over the limit the broker and worker accept."""


class ManifestError(RolloutLakeError, ValueError):
    """A snapshot's manifest.json is not valid JSON or does not match the snapshot format."""


class ManifestVersionError(ManifestError):
    """A manifest.json has a format_version this code does not read."""


class ToolCallParseError(RolloutLakeError, ValueError):
    """Assistant text holds a <tool_call> block that is not valid JSON of the canonical shape."""
