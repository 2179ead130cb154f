"""Streaming side of the rollout lake: the producer SDK task apps use, the broker launcher, the worker.

Importing `streams` is light (no Faust, no Kafka client); the worker lives in `streams.app`.
"""

from streams.exceptions import (
    ImportSourceError,
    PublishError,
    PublisherConfigError,
    SessionClosedError,
    SpoolError,
)
from streams.producer import PublisherSettings, RolloutPublisher
from streams.session import RolloutSession
from streams.sync import SyncRolloutPublisher, SyncRolloutSession

__all__ = [
    "ImportSourceError",
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
