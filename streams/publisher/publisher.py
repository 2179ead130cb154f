"""The producer SDK: task apps publish rollout events to Kafka, keyed by session_id, acks=all.

Delivery is at-least-once with confirmation: a call that returns has its events acknowledged by
every in-sync replica; a broker that stays away past `delivery_timeout` raises PublishError.
Duplicates from retries are harmless because the worker drops events by event_id.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from schemas import MAX_EVENT_BYTES, Judgment, OutcomeReward, SessionStart, encode_event
from schemas.kafka import DEFAULT_ROLLOUT_TOPIC, KafkaSettings
from streams.publisher.event_builder import build_event, coerce_event
from streams.publisher.exceptions import PublisherConfigError, PublishError
from streams.publisher.session import RolloutSession
from streams.publisher.spool import Spool, SpooledRecord

__all__ = ["RolloutPublisher", "PublisherSettings"]

log = logging.getLogger(__name__)

# Options passed through to AIOKafkaProducer; acks and idempotence are ours to set.
CLIENT_OPTIONS = frozenset({
    "security_protocol", "ssl_context", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
    "sasl_kerberos_service_name", "sasl_kerberos_domain_name", "sasl_oauth_token_provider",
    "client_id", "compression_type", "linger_ms", "max_batch_size", "metadata_max_age_ms",
    "connections_max_idle_ms", "api_version", "request_timeout_ms", "retry_backoff_ms",
})
# Bootstrap addresses whose broker refused InitProducerId; later publishers skip the attempt.
_no_idempotence: set[str] = set()


class _InitProducerIdRefusal(logging.Filter):
    """aiokafka logs a refused InitProducerId as an ERROR before we can fall back; it is expected
    on brokers without idempotence (the embedded one), so it becomes DEBUG and we say it clearly."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Unexpected error during InitProducerIdRequest"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger("aiokafka.producer.sender").addFilter(_InitProducerIdRefusal())


class PublisherSettings(KafkaSettings):
    """Producer settings from the environment (KAFKA_*, ROLLOUT_TOPIC, plus the ones below)."""

    publish_timeout_s: float = Field(default=30.0, gt=0, description="delivery deadline per call")
    rollout_spool_path: str | None = Field(default=None, description="write-ahead spool file (JSONL)")
    max_event_bytes: int = Field(default=MAX_EVENT_BYTES, ge=1024)


def _retriable(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, UnknownError

    # A broker coming back (Tansu among them) answers UnknownError until its topics exist again;
    # retrying it stays bounded by the delivery deadline.
    return isinstance(exc, (KafkaConnectionError, KafkaTimeoutError, OSError, UnknownError)) or bool(
        getattr(exc, "retriable", False)
    )


def _silence(fut: asyncio.Future[Any]) -> None:
    # An abandoned delivery future may still fail later; fetch its exception so asyncio stays quiet.
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())


class RolloutPublisher:
    """Async publisher of wire-format-v1 events. Nothing connects until `start()` / `async with`."""

    def __init__(
        self,
        bootstrap_servers: str = "127.0.0.1:9092",
        topic: str = DEFAULT_ROLLOUT_TOPIC,
        *,
        max_event_bytes: int = MAX_EVENT_BYTES,
        delivery_timeout: float = 30.0,
        spool_path: str | os.PathLike[str] | None = None,
        enable_idempotence: bool = True,
        **client_options: Any,
    ) -> None:
        if not isinstance(bootstrap_servers, str) or not bootstrap_servers.strip():
            raise PublisherConfigError(f"bootstrap_servers = {bootstrap_servers!r}: expected 'host:port[,host:port]'")
        if not isinstance(topic, str) or not topic.strip():
            raise PublisherConfigError(f"topic = {topic!r}: expected a non-empty topic name")
        if not isinstance(max_event_bytes, int) or max_event_bytes < 1:
            raise PublisherConfigError(f"max_event_bytes = {max_event_bytes!r}: expected a positive int")
        if not isinstance(delivery_timeout, (int, float)) or delivery_timeout <= 0:
            raise PublisherConfigError(f"delivery_timeout = {delivery_timeout!r}: expected seconds > 0")
        unknown = sorted(set(client_options) - CLIENT_OPTIONS)
        if unknown:
            raise PublisherConfigError(
                f"unknown publisher option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(CLIENT_OPTIONS))}"
            )
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.max_event_bytes = max_event_bytes
        self.delivery_timeout = float(delivery_timeout)
        self.enable_idempotence = enable_idempotence
        self.spool = Spool(spool_path) if spool_path is not None else None
        self._options = {"client_id": "rollout-lake-publisher", "linger_ms": 5, **client_options}
        self._producer: Any = None
        self.idempotent: bool | None = None  # known after start()

    @classmethod
    def from_env(cls, **overrides: Any) -> "RolloutPublisher":
        """Build from KAFKA_BOOTSTRAP_SERVERS, ROLLOUT_TOPIC, KAFKA_* security, PUBLISH_TIMEOUT_S,
        ROLLOUT_SPOOL_PATH and MAX_EVENT_BYTES; keyword overrides win."""
        settings = PublisherSettings()
        kwargs: dict[str, Any] = {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "topic": settings.rollout_topic,
            "max_event_bytes": settings.max_event_bytes,
            "delivery_timeout": settings.publish_timeout_s,
            "spool_path": settings.rollout_spool_path,
            **settings.aiokafka_kwargs(),
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def __repr__(self) -> str:
        return f"RolloutPublisher({self.bootstrap_servers!r}, {self.topic!r}, started={self.started})"

    @property
    def started(self) -> bool:
        return self._producer is not None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> "RolloutPublisher":
        """Connect (retrying until `delivery_timeout`) and send whatever the spool still holds."""
        if self._producer is not None:
            return self
        pending = self.spool.open() if self.spool else []
        try:
            self._producer = await self._connect()
            if pending:
                await self._deliver(pending, spool=False)
                log.info("replayed %d spooled events from %s", len(pending), self.spool.path)  # type: ignore[union-attr]
            if self.spool:
                self.spool.compact()
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def close(self) -> None:
        """Flush and disconnect; the spool keeps anything still unconfirmed."""
        await self._shutdown()

    async def __aenter__(self) -> "RolloutPublisher":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _shutdown(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), self.delivery_timeout)
            except (asyncio.TimeoutError, Exception) as exc:  # stop() flushes; a dead broker makes it hang
                log.warning("kafka producer did not stop cleanly: %r", exc)
        if self.spool:
            self.spool.compact()
            self.spool.close()

    async def _connect(self) -> Any:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import BrokerResponseError, KafkaError

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.delivery_timeout
        idempotent = self.enable_idempotence and self.bootstrap_servers not in _no_idempotence
        options = dict(self._options)
        options.setdefault("request_timeout_ms", int(min(max(self.delivery_timeout, 1.0), 30.0) * 1000))
        options["max_request_size"] = max(1_048_576, self.max_event_bytes + 64 * 1024)
        backoff = 0.05
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers, acks="all", enable_idempotence=idempotent, **options
            )
            try:
                await asyncio.wait_for(producer.start(), max(deadline - loop.time(), 0.001))
                self.idempotent = idempotent
                return producer
            except BrokerResponseError as exc:
                await _quiet_stop(producer)
                if idempotent and not exc.retriable:
                    # Brokers without InitProducerId (Tansu, old Kafka, no IdempotentWrite ACL).
                    idempotent = False
                    _no_idempotence.add(self.bootstrap_servers)
                    log.info("broker at %s does not offer idempotent producers (InitProducerId: %s); publishing "
                             "with acks=all and retries instead, the worker drops any duplicate by event_id",
                             self.bootstrap_servers, type(exc).__name__)
                    continue
                if not exc.retriable:
                    raise PublishError(f"broker at {self.bootstrap_servers} refused the producer: {exc!r}") from exc
                last: BaseException = exc
            except (KafkaError, OSError, asyncio.TimeoutError) as exc:
                await _quiet_stop(producer)
                if isinstance(exc, KafkaError) and not _retriable(exc):
                    raise PublishError(f"cannot start a producer for {self.bootstrap_servers}: {exc!r}") from exc
                last = exc
            if loop.time() + backoff >= deadline:
                raise PublishError(
                    f"Kafka at {self.bootstrap_servers} was unreachable for {self.delivery_timeout:g}s "
                    f"({last!r}); is the broker running? (`python -m streams broker` starts a local one)"
                ) from last
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    # -- the public calls ----------------------------------------------------------------------

    def session(
        self,
        *,
        env_name: str | None = None,
        policy_name: str | None = None,
        model: str | None = None,
        task_id: str | None = None,
        split: str | None = None,
        seed: int | None = None,
        run_id: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> RolloutSession:
        """A session context: `async with pub.session(...) as s: await s.turn(...)`.

        Arguments are validated now; session_start is sent on entering the block."""
        start = build_event(
            SessionStart,
            session_id=RolloutSession.new_id() if session_id is None else session_id,
            env_name=env_name, policy_name=policy_name, model=model, task_id=task_id, split=split,
            seed=seed, run_id=run_id, tools=tools, metadata=metadata,
        )
        return RolloutSession(self, start)

    async def outcome_reward(
        self,
        session_id: str,
        total_reward: float,
        *,
        achievements: Iterable[str] | None = None,
        objective: str = "reward",
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> OutcomeReward:
        """Publish a session's outcome reward (any time, before or after its session ends)."""
        event = build_event(
            OutcomeReward, session_id=session_id, total_reward=total_reward, achievements=achievements,
            objective=objective, source=source, metadata=metadata, event_id=event_id,
        )
        await self._deliver([self._record(event)])
        return event

    async def judgment(
        self,
        session_id: str,
        label: str,
        *,
        source: str | None = None,
        reason: str | None = None,
        score: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> Judgment:
        """Publish a reviewer's or judge's label for a session."""
        event = build_event(
            Judgment, session_id=session_id, label=label, source=source, reason=reason, score=score,
            metadata=metadata, event_id=event_id,
        )
        await self._deliver([self._record(event)])
        return event

    async def publish(self, event: Any) -> Any:
        """Publish one schemas event (or a v1 dict) and wait for its delivery; returns the event sent."""
        event = coerce_event(event)
        await self._deliver([self._record(event)])
        return event

    async def publish_many(self, events: Iterable[Any], *, stamp: bool = True) -> int:
        """Validate all events first (a bad one sends nothing), then send pipelined and confirm all.

        stamp=False leaves a missing ts absent (the worker then uses ingest time), which keeps
        replayed sources byte-identical from one import to the next."""
        records = [self._record(coerce_event(e, stamp=stamp)) for e in events]
        await self._deliver(records)
        return len(records)

    # -- delivery ------------------------------------------------------------------------------

    def _record(self, event: Any) -> SpooledRecord:
        value = encode_event(event, max_bytes=self.max_event_bytes)
        return SpooledRecord(event.event_id, self.topic, event.session_id.encode(), value)

    def _require_started(self) -> Any:
        if self._producer is None:
            raise PublishError(
                "publisher is not started; use `async with RolloutPublisher(...) as pub` or `await pub.start()`"
            )
        return self._producer

    async def _enqueue(self, rec: SpooledRecord, deadline: float) -> asyncio.Future[Any]:
        """Hand one record to the client's buffer, retrying while the broker is unreachable."""
        from aiokafka.errors import KafkaError

        producer = self._require_started()
        loop = asyncio.get_running_loop()
        backoff = 0.05
        last: BaseException | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._timeout([rec], last)
            try:
                return await asyncio.wait_for(producer.send(rec.topic, rec.value, key=rec.key), remaining)
            except asyncio.TimeoutError as exc:
                last = exc
                continue
            except KafkaError as exc:
                if not _retriable(exc):
                    raise PublishError(
                        f"Kafka refused event {rec.event_id} for topic {rec.topic!r}: {exc!r}", event_ids=[rec.event_id]
                    ) from exc
                last = exc
            await asyncio.sleep(min(backoff, max(deadline - loop.time(), 0)))
            backoff = min(backoff * 2, 1.0)

    async def _send(self, records: list[SpooledRecord], *, spool: bool = True) -> list[asyncio.Future[Any]]:
        """Spool (write-ahead) and enqueue records; confirmation comes later with `_confirm`."""
        self._require_started()
        if spool and self.spool:
            self.spool.append(records)
        deadline = asyncio.get_running_loop().time() + self.delivery_timeout
        futures: list[asyncio.Future[Any]] = []
        try:
            for rec in records:
                futures.append(await self._enqueue(rec, deadline))
        except PublishError as exc:
            for fut in futures:
                _silence(fut)
            exc.event_ids = [r.event_id for r in records]
            raise
        return futures

    async def _confirm(self, pairs: list[tuple[SpooledRecord, asyncio.Future[Any]]]) -> None:
        """Wait until Kafka acknowledged every record, resending on retriable errors."""
        from aiokafka.errors import KafkaError

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.delivery_timeout
        done: list[str] = []
        try:
            for i, (rec, fut) in enumerate(pairs):
                while True:
                    try:
                        await asyncio.wait_for(asyncio.shield(fut), max(deadline - loop.time(), 0))
                        break
                    except asyncio.TimeoutError:
                        raise self._timeout([r for r, _ in pairs[i:]], None) from None
                    except KafkaError as exc:
                        if not _retriable(exc):
                            raise PublishError(
                                f"Kafka refused event {rec.event_id} for topic {rec.topic!r}: {exc!r}",
                                event_ids=[r.event_id for r, _ in pairs[i:]],
                            ) from exc
                        fut = await self._enqueue(rec, deadline)
                done.append(rec.event_id)
        except PublishError as exc:
            for _, fut in pairs:
                _silence(fut)
            exc.event_ids = exc.event_ids or [r.event_id for r, _ in pairs if r.event_id not in set(done)]
            raise
        finally:
            if self.spool and done:
                self.spool.ack(done)

    async def _deliver(self, records: list[SpooledRecord], *, spool: bool = True) -> None:
        futures = await self._send(records, spool=spool)
        await self._confirm(list(zip(records, futures)))

    def _timeout(self, records: list[SpooledRecord], last: BaseException | None) -> PublishError:
        kept = f"; kept in spool {self.spool.path}" if self.spool else "; pass spool_path= to keep them on disk"
        cause = f" (last error: {last!r})" if last and not isinstance(last, asyncio.TimeoutError) else ""
        return PublishError(
            f"{len(records)} event(s) not confirmed by Kafka at {self.bootstrap_servers} within "
            f"{self.delivery_timeout:g}s{cause}{kept}",
            event_ids=[r.event_id for r in records],
        )


async def _quiet_stop(producer: Any) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 5)
    except Exception as exc:  # a half-started client; nothing more to release
        log.debug("stopping a failed producer: %r", exc)
