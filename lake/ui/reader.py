"""The UI's read path: every request reads the lake pinned at one consistent point.

Each request asks lake.pins for the latest consistent table versions (a few small reads of the
Delta logs). While they stay the same, the open DuckDB connection is reused; when the worker
has committed since, a new connection pinned at the new versions replaces it. A page therefore
never mixes two points of the worker's commits, and never holds up the worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["PinnedReader"]


class PinnedReader:
    """Hands out a `lake.reader.Lake` pinned at the latest consistent versions, one request at a time."""

    def __init__(self, lake_uri: str, *, reader: str = "auto", storage_options: Mapping[str, str] | None = None,
                 memory_limit: str = "1GB") -> None:
        self.lake_uri = lake_uri
        self.reader = reader
        self.storage_options = dict(storage_options or {})
        self.memory_limit = memory_limit
        # One DuckDB connection serves one request at a time; a local UI has one user.
        self._lock = threading.Lock()
        self._lake: Any = None
        self._memo: dict[Hashable, Any] = {}

    def versions(self) -> dict[str, int]:
        from lake.pins import consistent_versions

        return consistent_versions(self.lake_uri, storage_options=self.storage_options or None)

    @contextmanager
    def pinned(self) -> Iterator[Any]:
        """The lake at the latest consistent versions, sandboxed like `lake sql` (lock_down)."""
        with self._lock:
            versions = self.versions()
            if self._lake is None or self._lake.versions != versions:
                self._close()
                from lake.reader import connect

                lake = connect(self.lake_uri, versions=versions, reader=self.reader,  # type: ignore[arg-type]
                               storage_options=self.storage_options or None, memory_limit=self.memory_limit)
                lake.lock_down()
                self._lake = lake
                self._memo = {}
            yield self._lake

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`compute()` once per pinned versions: what a pinned lake answers never changes.
        Call inside `pinned()`; a bounded number of answers is kept."""
        if key not in self._memo:
            if len(self._memo) >= 256:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = compute()
        return self._memo[key]

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._lake is not None:
            self._lake.close()
            self._lake = None
