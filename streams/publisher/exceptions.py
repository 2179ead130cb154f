"""Errors of the publisher SDK; all subclass the project's RolloutLakeError."""

from __future__ import annotations

from schemas.exceptions import RolloutLakeError

__all__ = ["PublishError", "PublisherConfigError", "SessionClosedError", "SpoolError"]


class PublishError(RolloutLakeError):
    """Events could not be delivered to Kafka before the deadline (or the broker refused them).

    `event_ids` names the events whose delivery was not confirmed; with a spool they are kept
    on disk and sent again by the next publisher that opens the same spool.
    """

    def __init__(self, message: str, *, event_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.event_ids = list(event_ids or [])


class PublisherConfigError(RolloutLakeError, ValueError):
    """A publisher option is wrong (unknown client option, non-positive timeout, ...)."""


class SessionClosedError(RolloutLakeError, RuntimeError):
    """A session was used outside its `with` block."""


class SpoolError(RolloutLakeError):
    """The local spool file cannot be used (held by another publisher, unreadable)."""
