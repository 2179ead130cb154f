"""Fixtures for the ingestion worker: real `faust -A streams.worker.app worker` processes on the real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lake.tables import TABLES, table_uri
from streams.devtools.broker import free_port

REPO = Path(__file__).resolve().parents[2]


class Worker:
    """One worker process; `kill()` is SIGKILL (no cleanup at all), `stop()` is a clean SIGTERM."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Worker":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "streams.worker.app", "worker", "-l", "info"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_env(bootstrap: str, topic: str, lake: str, group: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ROLLOUT_", "LAKE_", "BATCH_"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        ROLLOUT_TOPIC=topic,
        LAKE_URI=lake,
        WORKER_GROUP=group,
        TOPIC_PARTITIONS="4",
        BATCH_MAX_LATENCY_S="0.5",
        TIMER_INTERVAL_S="0.5",
        MAX_EVENT_BYTES="200000",
        # Small fetches: with a small BATCH_MAX_ROWS, the fault tests' kill points see many commits.
        TAKE_MAX_RECORDS="500",
        PYTHONUNBUFFERED="1",
        WEB_PORT=str(free_port()),  # several workers on this host: each web server on its own port
    )
    env.update(extra)
    return env


@pytest.fixture
def worker_factory(broker, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Starts worker processes for a topic/lake; every one is killed at teardown."""
    started: list[Worker] = []

    def make(topic: str, lake: str, *, group: str | None = None, **extra: str) -> Worker:
        env = worker_env(broker.bootstrap_servers, topic, lake, group or f"g-{uuid.uuid4().hex[:8]}", **extra)
        w = Worker(env, tmp_path / f"worker-{len(started)}.log").start()
        started.append(w)
        return w

    yield make
    for w in started:
        w.kill()


def publish(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    """Publish raw (key, value) records with a plain aiokafka producer, acks=all."""
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
        await producer.start()
        try:
            futures = [await producer.send(topic, value=v, key=k) for k, v in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def lake_counts(lake: str) -> dict[str, int]:
    out = {}
    for name in TABLES:
        try:
            out[name] = DeltaTable(table_uri(lake, name)).count()
        except Exception:
            out[name] = 0
    return out


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, workers: list[Worker] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    tail = "\n".join(w.log()[-3000:] for w in workers)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")
