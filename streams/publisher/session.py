"""One rollout as a context: session_start on entry, numbered turns, session_end on exit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from schemas import SESSION_STATUSES, EventValidationError, SessionEnd, SessionStart, Turn
from streams.publisher.event_builder import build_event
from streams.publisher.exceptions import PublishError, SessionClosedError

if TYPE_CHECKING:
    from streams.publisher.publisher import RolloutPublisher
    from streams.publisher.spool import SpooledRecord

__all__ = ["RolloutSession"]


class RolloutSession:
    """Made by `RolloutPublisher.session(...)`; use as `async with`.

    Turns are handed to the client as they come (turn() returns once the event is buffered);
    leaving the block sends session_end and waits until Kafka confirmed every event of the session.
    """

    def __init__(self, publisher: "RolloutPublisher", start: SessionStart) -> None:
        self._pub = publisher
        self.start_event = start
        self.session_id: str = start.session_id
        self.num_turns = 0
        self.status: str | None = None
        self._pending: list[tuple["SpooledRecord", asyncio.Future[Any]]] = []
        self._state = "new"

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    def __repr__(self) -> str:
        return f"RolloutSession({self.session_id!r}, turns={self.num_turns}, {self._state})"

    async def __aenter__(self) -> "RolloutSession":
        if self._state != "new":
            raise SessionClosedError(f"session {self.session_id!r} was already entered; open a new one")
        await self._send(self.start_event)
        self._state = "open"
        return self

    async def turn(
        self,
        messages: Iterable[Any] | None = None,
        *,
        reward: float | None = None,
        achievements: Iterable[str] | None = None,
        valid: bool = True,
        done: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> Turn:
        """Publish the next turn (numbered from 0). Returns the event once it is buffered."""
        event = build_event(
            Turn, session_id=self.session_id, turn=self.num_turns, messages=messages, reward=reward,
            achievements=achievements, valid=valid, done=done, metadata=metadata,
        )
        rec = self._pub._record(event)  # refuses an oversized turn before it takes a number
        self._check_open()
        # Numbered before awaiting so concurrent turn() calls never share a number; a turn that
        # fails to send keeps its number (it is in the spool, or the caller got PublishError).
        self.num_turns += 1
        await self._send_record(rec)
        return event

    def set_status(self, status: str) -> None:
        """How the session ended: terminated (default), truncated or error."""
        if status not in SESSION_STATUSES:
            raise EventValidationError(f"status = {status!r}: expected one of {', '.join(SESSION_STATUSES)}")
        self.status = status

    async def flush(self) -> None:
        """Wait until Kafka confirmed every event sent so far."""
        pending, self._pending = self._pending, []
        await self._pub._confirm(pending)

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self._state != "open":
            return False
        self._state = "closed"
        status = "error" if exc is not None else (self.status or "terminated")
        end = build_event(SessionEnd, session_id=self.session_id, status=status, num_turns=self.num_turns)
        if isinstance(exc, PublishError):
            # The broker just stayed away for a whole deadline; don't wait another. With a
            # spool the end is kept on disk with the rest of the session.
            if self._pub.spool:
                self._pub.spool.append([self._pub._record(end)])
            return False
        await self._send(end)
        await self.flush()
        return False

    def _check_open(self) -> None:
        if self._state != "open":
            raise SessionClosedError(
                f"session {self.session_id!r} is {self._state}; call turn() inside `async with pub.session(...)`"
            )

    async def _send(self, event: Any) -> None:
        await self._send_record(self._pub._record(event))

    async def _send_record(self, rec: "SpooledRecord") -> None:
        (fut,) = await self._pub._send([rec])
        self._pending.append((rec, fut))
