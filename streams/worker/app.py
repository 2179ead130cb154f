"""The Faust application (`faust -A streams.worker.app worker -l info`); the worker lives in streams.worker."""

from __future__ import annotations

import tempfile
from pathlib import Path

from schemas.extras import MissingExtraError, require

try:
    require("worker", what="the worker (`faust -A streams.worker.app`)")
except MissingExtraError as exc:  # faust prints an import error as a traceback; this is one line
    raise SystemExit(f"error: {exc}") from None

import faust  # noqa: E402

from streams.worker.settings import WorkerSettings
from streams.worker.transport import SCHEME as TRANSPORT_SCHEME
from streams.worker.transport import register as register_transport

__all__ = ["app", "settings"]

settings = WorkerSettings()


def _credentials(s: WorkerSettings) -> object | None:
    if s.kafka_sasl_mechanism:
        password = s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else ""
        ssl_context = None
        if s.kafka_security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            ssl_context = create_ssl_context(cafile=s.kafka_ssl_cafile)
        return faust.SASLCredentials(
            username=s.kafka_sasl_username,
            password=password,
            mechanism=s.kafka_sasl_mechanism,
            ssl_context=ssl_context,
        )
    if s.kafka_security_protocol == "SSL":
        from aiokafka.helpers import create_ssl_context

        return faust.SSLCredentials(create_ssl_context(cafile=s.kafka_ssl_cafile))
    return None


register_transport()
_servers = [server.strip() for server in settings.kafka_bootstrap_servers.split(",")]
_consumer_scheme = TRANSPORT_SCHEME if settings.fast_delivery else "kafka"

app = faust.App(
    settings.worker_group,
    broker=[f"kafka://{server}" for server in _servers],
    broker_consumer=[f"{_consumer_scheme}://{server}" for server in _servers],
    broker_credentials=_credentials(settings),
    # No Faust tables: the lake is the only truth, so nothing durable lives in the data dir.
    datadir=settings.worker_datadir or str(Path(tempfile.gettempdir()) / f"rollout-lake-worker-{settings.worker_group}"),
    autodiscover=["streams.worker.stream"],
    origin="streams.worker",
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=settings.topic_replication_factor,
    # A new group reads the topic from its start: no event published before the worker is lost.
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    # Short timeouts so a crashed worker's partitions move to a live one within seconds.
    broker_session_timeout=settings.broker_session_timeout_s,
    broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
    broker_rebalance_timeout=settings.broker_session_timeout_s,
    stream_buffer_maxsize=settings.stream_buffer_maxsize,
    # One fetch is one list handed to the worker (transport.Bulk holds 8): this bounds their size.
    broker_max_poll_records=settings.take_max_records,
    web_enabled=settings.web_enabled,
    web_port=settings.web_port,
)
