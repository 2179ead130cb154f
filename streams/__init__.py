"""Streaming side of the rollout lake, by role:

- `streams.publisher`: the SDK task apps import (pydantic and aiokafka only); its names are
  re-exported here, so `from streams import RolloutPublisher` works on the base install;
- `streams.worker`: the Faust ingestion worker (`faust -A streams.worker.app worker`, extra [worker]);
- `streams.importers`: existing traces replayed through Kafka;
- `streams.devtools`: the embedded broker and synthetic sessions, for tests, benches and the tour.
"""

from streams import publisher as _publisher
from streams.publisher import *  # noqa: F403  (the SDK's public names)

__all__ = list(_publisher.__all__)
