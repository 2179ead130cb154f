"""Streaming side of the rollout lake, by role:

- `streams.publisher`: the SDK task apps import (pydantic and aiokafka only); its names are
  re-exported here, so `from streams import RolloutPublisher` works on the base install;
- `streams.worker`: the Faust ingestion worker (`faust -A streams.worker.app worker`, extra [worker]);
- `streams.importers`: existing traces replayed through Kafka;
- `streams.devtools`: the embedded broker and synthetic sessions, for tests, benches and the tour.
"""

from streams.publisher import (
    PublisherConfigError,
    PublishError,
    PublisherSettings,
    RolloutPublisher,
    RolloutSession,
    SessionClosedError,
    SpoolError,
    SyncRolloutPublisher,
    SyncRolloutSession,
)

__all__ = [
    "PublishError",
    "PublisherConfigError",
    "PublisherSettings",
    "RolloutPublisher",
    "RolloutSession",
    "SessionClosedError",
    "SpoolError",
    "SyncRolloutPublisher",
    "SyncRolloutSession",
]
