"""A real worker process takes every hostile record at once, stays up, and the good sessions land."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys

import pytest

from streams.devtools.synthetic import hostile_records, make_sessions, to_records
from tests.conftest import KEYS, complete, lake_counts, read, wait_for

pytestmark = pytest.mark.fault


def _publish_with_timestamps(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, int | None]]) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 * 1024 * 1024)
        await producer.start()
        try:
            futures = [await producer.send(topic, value=v, key=k, timestamp_ms=ts) for k, v, ts in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def test_every_hostile_record_is_a_dead_letter_and_the_worker_stays_up(broker, topic_factory, lake_uri_factory, worker_factory, tmp_path):
    sessions = make_sessions(60, 5, seed=21, obs_chars=100)
    good = [(k, v, None) for k, v in to_records(sessions, seed=21, duplicate_rate=0.05, shuffle=True)]
    hostile = hostile_records("w")
    records = list(good)
    rng = random.Random(21)
    for h in hostile:  # between good sessions, each in its own place
        records.insert(rng.randrange(len(records)), (h.key, h.value, h.timestamp_ms))
    topic, lake = topic_factory(1), lake_uri_factory()
    worker = worker_factory(topic, lake, MAX_EVENT_BYTES="1000000")
    _publish_with_timestamps(broker.bootstrap_servers, topic, records)
    wait_for(complete(lake, sessions, len(hostile)), 180, "the good sessions and every dead letter", [worker])
    assert worker.proc.poll() is None, "the worker stopped"
    for name, keys in KEYS.items():
        table = read(lake, name)
        assert table.group_by(keys).aggregate([]).num_rows == table.num_rows, f"duplicate rows in {name}"
    dead = read(lake, "dead_letters").to_pylist()
    assert sorted(d["raw"] for d in dead) == sorted(h.value for h in hostile)
    assert all(d["error"] for d in dead)

    out = tmp_path / "snap"
    done = subprocess.run([sys.executable, "-m", "lake", "snapshot", "--lake", lake, "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len((out / "train.jsonl").read_text().splitlines()) > 0
    assert lake_counts(lake)["sessions"] == len(sessions)
