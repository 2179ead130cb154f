"""The ingestion worker: Kafka records -> validated, assembled session rows -> Delta, exactly once.

`faust -A streams.worker.app worker` loads `streams.worker.stream` (the Faust agent); the logic lives in
plain classes that do not import Faust, so `streams.worker.offline` drives the same path from memory.
"""

from streams.worker.guard import LogResetError, PartitionGuard, PartitionLog
from streams.worker.hooks import CommitHooks, load_hooks
from streams.worker.ingestor import Ingestor, Record

__all__ = ["CommitHooks", "Ingestor", "LogResetError", "PartitionGuard", "PartitionLog", "Record", "load_hooks"]
