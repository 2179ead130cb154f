"""The publisher SDK task apps import: rollout events to Kafka, keyed by session_id, acks=all.

It needs only pydantic and aiokafka (`pip install rollout-lake`); nothing here imports Faust,
Delta Lake, DuckDB or torch (tests/streams/publisher/test_light_install.py checks it in a fresh venv).
"""

from streams.publisher.blocking import SyncRolloutPublisher, SyncRolloutSession
from streams.publisher.exceptions import PublisherConfigError, PublishError, SessionClosedError, SpoolError
from streams.publisher.publisher import PublisherSettings, RolloutPublisher
from streams.publisher.session import RolloutSession

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
