"""Blocking wrappers for sync task apps: the async publisher runs on a loop in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from streams.publisher.exceptions import PublishError
from streams.publisher.publisher import RolloutPublisher
from streams.publisher.session import RolloutSession

__all__ = ["SyncRolloutPublisher", "SyncRolloutSession"]

T = TypeVar("T")


class SyncRolloutSession:
    """Blocking twin of RolloutSession; use as `with pub.session(...) as s: s.turn(...)`."""

    def __init__(self, publisher: "SyncRolloutPublisher", session: RolloutSession) -> None:
        self._pub = publisher
        self._session = session
        self.session_id = session.session_id

    @property
    def num_turns(self) -> int:
        return self._session.num_turns

    def __enter__(self) -> "SyncRolloutSession":
        self._pub._call(self._session.__aenter__())
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        return self._pub._call(self._session.__aexit__(exc_type, exc, tb))

    def turn(self, messages: Iterable[Any] | None = None, **kwargs: Any) -> Any:
        """Publish the next turn; same arguments as RolloutSession.turn."""
        return self._pub._call(self._session.turn(messages, **kwargs))

    def set_status(self, status: str) -> None:
        self._session.set_status(status)

    def flush(self) -> None:
        self._pub._call(self._session.flush())


class SyncRolloutPublisher:
    """Same arguments as RolloutPublisher. Connects in `start()` / `with`, not in the constructor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._async = kwargs.pop("_publisher", None) or RolloutPublisher(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, **overrides: Any) -> "SyncRolloutPublisher":
        return cls(_publisher=RolloutPublisher.from_env(**overrides))

    @property
    def publisher(self) -> RolloutPublisher:
        """The async publisher underneath (its loop runs in this wrapper's thread)."""
        return self._async

    @property
    def topic(self) -> str:
        return self._async.topic

    def start(self) -> "SyncRolloutPublisher":
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="rollout-publisher", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._call(self._async.start())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            self._call(self._async.close())
        finally:
            self._stop_loop()

    def __enter__(self) -> "SyncRolloutPublisher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def session(self, **kwargs: Any) -> SyncRolloutSession:
        """Same keyword arguments as RolloutPublisher.session; validated now."""
        return SyncRolloutSession(self, self._async.session(**kwargs))

    def outcome_reward(self, session_id: str, total_reward: float, **kwargs: Any) -> Any:
        return self._call(self._async.outcome_reward(session_id, total_reward, **kwargs))

    def judgment(self, session_id: str, label: str, **kwargs: Any) -> Any:
        return self._call(self._async.judgment(session_id, label, **kwargs))

    def publish(self, event: Any) -> Any:
        return self._call(self._async.publish(event))

    def publish_many(self, events: Iterable[Any]) -> int:
        return self._call(self._async.publish_many(events))

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise PublishError("publisher is not started; use `with SyncRolloutPublisher(...) as pub` or pub.start()")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop_loop(self) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join()
        loop.close()
