"""Baselines for bench.ingest: a plain aiokafka consumer on the worker's own building blocks.

`--mode floor`: validate (schemas.parse_event) and append the rows (streams.worker.rows.RowBatch ->
lake.writer.LakeWriter, offsets as Delta app transactions) in batches, one commit in flight,
Kafka offsets committed after each Delta commit. No session assembly, no `sessions` MERGE: the
floor of Python overhead for getting these events into Delta exactly once.

`--mode ingestor`: the same consumer loop driving streams.ingest.Ingestor (validation, session
assembly, sessions MERGE): the worker's logic without Faust, to split the gap.

Prints "ready" once partitions are assigned; runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from lake.writer import LakeWriter
from schemas import EventValidationError, Judgment, OutcomeReward, Turn, parse_event
from streams.worker.rows import RowBatch
from streams.worker.settings import WorkerSettings


async def run(mode: str, settings: WorkerSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    consumer = AIOKafkaConsumer(
        settings.rollout_topic, bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.worker_group,
        enable_auto_commit=False, auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024, session_timeout_ms=6000, heartbeat_interval_ms=1500,
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)  # join the group; the topic is empty at this point
        consumer.seek_to_beginning()
    print("ready", flush=True)
    try:
        if mode == "floor":
            await _floor(consumer, settings, stop)
        else:
            await _ingestor(consumer, settings, stop)
    finally:
        await consumer.stop()


async def _floor(consumer: AIOKafkaConsumer, s: WorkerSettings, stop: asyncio.Event) -> None:
    from concurrent.futures import ThreadPoolExecutor

    writer = LakeWriter(s.lake_uri, app_id="bench-floor")
    executor = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(executor, writer.ensure_tables)
    batch = RowBatch()
    in_flight: asyncio.Future | None = None

    def commit(b: RowBatch) -> None:
        offsets = dict(b.offsets)
        for table, rows in b.tables():
            writer.append(table, rows, offsets=offsets)

    async def flush() -> None:
        nonlocal batch, in_flight
        if in_flight is not None:
            await in_flight
        b, batch = batch, RowBatch()
        if b.first_added is None:
            return

        async def done() -> None:
            await loop.run_in_executor(executor, commit, b)
            await consumer.commit({TopicPartition(t, p): o + 1 for (t, p), o in b.offsets.items()})

        in_flight = asyncio.ensure_future(done())

    while not stop.is_set():
        got = await consumer.getmany(timeout_ms=100, max_records=5000)
        for tp, msgs in got.items():
            for m in msgs:
                ms = m.timestamp
                try:
                    event = parse_event(m.value, max_bytes=s.max_event_bytes)
                    if m.key is not None and m.key != event.session_id.encode():
                        raise EventValidationError("record key does not match session_id")
                except EventValidationError as exc:
                    batch.add_dead_letter(str(exc), m.key, m.value, tp.topic, tp.partition, m.offset, ms)
                else:
                    if isinstance(event, Turn):
                        batch.add_turn(event, tp.topic, tp.partition, m.offset, ms)
                    elif isinstance(event, (OutcomeReward, Judgment)):
                        batch.add_reward(event, tp.topic, tp.partition, m.offset, ms)
                batch.track(tp.topic, tp.partition, m.offset, len(m.value), time.time())
        first = batch.first_added
        if len(batch) >= s.batch_max_rows or batch.approx_bytes >= s.batch_max_bytes or (
            first is not None and time.time() - first >= s.batch_max_latency_s
        ):
            await flush()
    await flush()
    if in_flight is not None:
        await in_flight


class _Ack:
    __slots__ = ("tp", "offset", "acked")

    def __init__(self, tp: TopicPartition, offset: int, acked: dict) -> None:
        self.tp, self.offset, self.acked = tp, offset, acked

    def ack(self) -> None:
        if self.offset >= self.acked.get(self.tp, -1):
            self.acked[self.tp] = self.offset


async def _ingestor(consumer: AIOKafkaConsumer, s: WorkerSettings, stop: asyncio.Event) -> None:
    from streams.worker import Ingestor, Record

    ingestor = Ingestor(s)
    await ingestor.start()
    await ingestor.on_assigned([(tp.topic, tp.partition) for tp in consumer.assignment()])
    acked: dict = {}
    committed: dict = {}
    last_tick = time.time()
    while not stop.is_set():
        got = await consumer.getmany(timeout_ms=100, max_records=5000)
        # One ack object per partition batch would do; per record mirrors Faust's events.
        records = [Record(m.key, m.value, tp.topic, tp.partition, m.offset, m.timestamp / 1000, _Ack(tp, m.offset, acked))
                   for tp, msgs in got.items() for m in msgs]
        if records:
            await ingestor.handle_batch(records)
        await ingestor.tick_latency()
        if time.time() - last_tick >= s.timer_interval_s:
            last_tick = time.time()
            await ingestor.tick_sessions()
        if acked != committed:
            await consumer.commit({tp: o + 1 for tp, o in acked.items()})
            committed = dict(acked)
    await ingestor.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.plain_consumer", description=__doc__)
    p.add_argument("--mode", choices=("floor", "ingestor"), default="floor")
    args = p.parse_args(argv)
    asyncio.run(run(args.mode, WorkerSettings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
