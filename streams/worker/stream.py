"""The Faust side of the worker: topics, the batch agent, timers, and the health/metrics pages."""

from __future__ import annotations

import logging
import time
from typing import Any

from faust.types import TP
from faust.web import Request, Response, View

from streams.worker import transport
from streams.worker.app import app, settings
from streams.worker.guard import LogResetError
from streams.worker.ingestor import Ingestor, Record
from streams.worker.metrics import WorkerCollector, render_metrics

__all__ = ["rollout_topic", "dead_letter_topic", "ingest", "ingestor"]

log = logging.getLogger(__name__)

rollout_topic = app.topic(
    settings.rollout_topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
)
dead_letter_topic = app.topic(
    settings.dlq_topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", partitions=1
)


async def _send_dead_letter(key: bytes | None, value: bytes | None, headers: dict[str, str]) -> None:
    await dead_letter_topic.send(key=key, value=value, headers={k: v.encode() for k, v in headers.items()})


class _FaustPartitionLog:
    """The topic as the guard needs it: a fresh consumer to look, Faust's own to seek."""

    async def first_offset_at(self, tp: tuple[str, int], offset: int) -> int | None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(*tp)
        # Never jump to the end: a position below the log start (retention) reads from the start.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False,
            auto_offset_reset="earliest", **settings.aiokafka_kwargs(),
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            start = (await consumer.beginning_offsets([tp]))[tp]
            # Read rather than trust the log end: Tansu reports the start of its last batch + 1.
            end = (await consumer.end_offsets([tp]))[tp]
            if end <= start:  # an empty log (Tansu under-reports a log end, but never to the start)
                return None
            if offset < start:
                log.warning(
                    "offsets %d..%d of %s/%d are no longer in the log (retention; it starts at %d); "
                    "the lake holds what was ingested of them, reading on from the log start",
                    offset, start - 1, tp.topic, tp.partition, start,
                )
                return start
            consumer.seek(tp, offset)
            deadline = time.monotonic() + (10.0 if end > offset else 3.0)
            while time.monotonic() < deadline:
                batches = await consumer.getmany(tp, timeout_ms=500, max_records=1)
                offsets = [r.offset for records in batches.values() for r in records if r.offset >= offset]
                if offsets:
                    return min(offsets)
            if end > offset:
                raise TimeoutError(f"no record of {tp.topic}/{tp.partition} at or after {offset} came in 10 s")
            return None
        finally:
            await consumer.stop()

    async def seek(self, tp: tuple[str, int], offset: int) -> None:
        # In the consumer's own thread (Faust's plain `seek` races its fetcher from this one).
        await app.consumer.seek_wait({TP(*tp): offset})


# With FAST_DELIVERY (the default) the consumer hands the rollout topic's records over a fetch at
# a time and each is acked as the raw message it came as; otherwise they come as Faust events.
bulk: transport.Bulk | None = None
if settings.fast_delivery:
    bulk = transport.Consumer.bulk = transport.Bulk({settings.rollout_topic})


def _ack_message(message: Any) -> None:
    app.consumer.ack(message)


# Faust events (FAST_DELIVERY=false) ack themselves: the committer's default.
ingestor = Ingestor(settings, send_dead_letter=_send_dead_letter, partition_log=_FaustPartitionLog(), crash=app.crash,
                    ack=_ack_message if bulk is not None else None)


def _highwater(tp: tuple[str, int]) -> int | None:
    try:
        return app.consumer.highwater(TP(*tp))
    except Exception:  # noqa: BLE001 - not assigned here, or the consumer is not up yet
        return None


_collector = WorkerCollector(ingestor, highwater=_highwater)


@app.task(on_leader=False)
async def _start_ingestor() -> None:
    await ingestor.start()


@app.on_partitions_assigned.connect
async def _on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
    await ingestor.on_assigned([(tp.topic, tp.partition) for tp in assigned])


@app.on_partitions_revoked.connect
async def _on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    gone = {(tp.topic, tp.partition) for tp in revoked}
    if bulk is not None:
        bulk.drop(lambda m: (m.topic, m.partition) not in gone)
    await ingestor.on_revoked(gone)


@app.agent(rollout_topic)
async def ingest(stream: Any) -> None:
    """Records in bulk, acked by hand once their batch is in the lake."""
    log.info("records of %s arrive %s", settings.rollout_topic,
             "a fetch at a time (FAST_DELIVERY)" if bulk is not None else "as Faust events (FAST_DELIVERY=false)")
    if bulk is None:
        async for events in stream.noack_take(settings.take_max_records, within=settings.take_within_s):
            await ingestor.handle_batch([
                Record(e.message.key, e.message.value, e.message.topic, e.message.partition, e.message.offset,
                       e.message.timestamp, e)
                for e in events
            ])
        return
    # Subscribe the topic as iterating the stream would; its records come through `bulk` instead.
    app.topics.add(rollout_topic)
    while True:
        messages = await bulk.get(settings.take_max_records)
        try:
            await ingestor.handle_batch([Record(m.key, m.value, m.topic, m.partition, m.offset, m.timestamp, m) for m in messages])
        except LogResetError:
            # The ingestor has stopped the worker (app.crash). A restarted agent would wait on the
            # queue for ever and hold the shutdown up, so this one ends here.
            return


@app.timer(interval=0.1)
async def _latency_flush() -> None:
    await ingestor.tick_latency()


@app.timer(interval=settings.timer_interval_s)
async def _session_timers() -> None:
    await ingestor.tick_sessions()


def _partitions() -> dict[str, dict[str, object]]:
    """The guard's view of each partition next to the consumer's: where a stall would show."""
    out = {}
    read_offsets = getattr(app.consumer, "_read_offset", {})
    for tp, state in ingestor.guard.partition_states().items():
        state = dict(state, highwater=_highwater(tp), read_offset=read_offsets.get(TP(*tp)))
        out[f"{tp[0]}/{tp[1]}"] = state
    return out


@app.timer(interval=30.0)
async def _report() -> None:
    if ingestor.counters:
        log.info("ingest counters: %s; open sessions in memory: %d; partitions: %s",
                 dict(sorted(ingestor.counters.items())), ingestor.open_sessions, _partitions())


@app.page("/health")
class Health(View):
    async def get(self, request: Request) -> Response:
        failure = ingestor.failure
        body = {
            "status": "failed" if failure else "ok",
            "error": repr(failure) if failure else None,
            "assigned": [f"{t}/{p}" for t, p in ingestor.assigned],
            "delivery": "bulk" if bulk is not None else "events",
            "open_sessions": ingestor.open_sessions,
            "committed_offsets": {f"{t}/{p}": o for (t, p), o in sorted(ingestor.guard.last_committed().items())},
            "partitions": _partitions(),
            "counters": dict(sorted(ingestor.counters.items())),
        }
        return self.json(body, status=500 if failure else 200)


@app.page("/metrics")
class Metrics(View):
    async def get(self, request: Request) -> Response:
        return self.bytes(render_metrics(_collector), content_type="text/plain; version=0.0.4")
