"""The ingestion worker: Kafka records -> validated, assembled session rows -> Delta, exactly once.

`faust -A streams.worker.app worker` loads `streams.worker.stream` (the Faust agent); the logic lives in
plain classes that do not import Faust, so `streams.worker.offline` drives the same path from memory.
Needs the worker extra; the names below load on first use, so `streams.worker.app` can say so in one
line when it is missing.
"""

from typing import TYPE_CHECKING

from schemas.lazy import lazy_getattr

_LAZY = {
    "LogResetError": "streams.worker.guard", "PartitionGuard": "streams.worker.guard",
    "PartitionLog": "streams.worker.guard",
    "CommitHooks": "streams.worker.hooks", "load_hooks": "streams.worker.hooks",
    "Ingestor": "streams.worker.ingestor", "Record": "streams.worker.ingestor",
}

if TYPE_CHECKING:
    from streams.worker.guard import LogResetError, PartitionGuard, PartitionLog
    from streams.worker.hooks import CommitHooks, load_hooks
    from streams.worker.ingestor import Ingestor, Record

__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = ["CommitHooks", "Ingestor", "LogResetError", "PartitionGuard", "PartitionLog", "Record", "load_hooks"]
