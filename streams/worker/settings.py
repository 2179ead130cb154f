"""Settings of the ingestion worker, read from the environment once in streams.worker.app."""

from __future__ import annotations

from pydantic import Field

from schemas.kafka import KafkaSettings

__all__ = ["WorkerSettings"]


class WorkerSettings(KafkaSettings):
    """The ingestion worker: where the lake is, and when sessions are batched and finalized."""

    lake_uri: str = "./lake"
    worker_group: str = "rollout-lake"
    # Bump when the topic's log was reset (topic recreated, a memory broker restarted): offsets
    # start at 0 again and must not be mistaken for ones the lake already holds.
    topic_epoch: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$")
    # Batches: whichever limit is hit first triggers a commit.
    batch_max_rows: int = Field(default=50_000, ge=1)
    batch_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    batch_max_latency_s: float = Field(default=1.0, gt=0)
    # Sessions: finalized after session_end + outcome reward, or session_end + this grace.
    reward_grace_s: float = Field(default=300.0, ge=0)
    # Sessions with no events for this long become `abandoned`.
    idle_timeout_s: float = Field(default=3600.0, gt=0)
    timer_interval_s: float = Field(default=2.0, gt=0)
    max_event_bytes: int = Field(default=1_000_000, ge=1024)
    topic_replication_factor: int = Field(default=1, ge=1)
    broker_session_timeout_s: float = Field(default=6.0, gt=0)
    broker_heartbeat_interval_s: float = Field(default=1.5, gt=0)
    # Records taken from Faust per call of the batch agent, and how long to wait to fill it.
    take_max_records: int = Field(default=2_000, ge=1)
    take_within_s: float = Field(default=0.05, gt=0)
    # Records Faust may prefetch per partition before it pauses the fetcher (Faust's default, 4096,
    # starves a bulk agent).
    stream_buffer_maxsize: int = Field(default=32_768, ge=1)
    # Hand the rollout topic's records to the agent a fetch at a time as raw messages
    # (streams/worker/transport.py); false: Faust's own per-record events, `noack_take` batches
    # of TAKE_MAX_RECORDS within TAKE_WITHIN_S, and the stream buffer above.
    fast_delivery: bool = True
    # A finalized session leaves memory this long after its row is committed; a later event
    # for it is resolved against the lake.
    evict_after_s: float = Field(default=10.0, ge=0)
    # `module:attribute` of commit hooks (streams.worker.hooks); tests install fault injection here.
    worker_hooks: str | None = None
    # Faust's data directory (it keeps no state here; nothing in it is needed for correctness).
    worker_datadir: str | None = Field(default=None, description="default: <tmp>/rollout-lake-worker-<group>")
    web_enabled: bool = False  # `faust worker` turns the web server on unless --without-web
    # Faust's web server (stats, table views); give each worker on one host its own port.
    web_port: int = Field(default=6066, ge=1, le=65535)
