"""`lake wait`: block until what was published is queryable, for scripts and CI.

Two conditions: N sessions ended with all their turns in, or every partition of the topic
folded into the lake up to its last record. The second reads the lake's own progress, the
Delta app-transaction versions the worker commits with (lake/writer.py), and compares them
with the last offset of each partition read from the log itself: the embedded broker (Tansu)
reports a log end at the start of its last batch + 1, so the reported end is only a lower bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from lake.exceptions import WaitTimeoutError
from lake.tables import TABLES, table_uri
from lake.writer import DEFAULT_APP_ID, app_id_for

__all__ = ["app_id_prefix", "ended_sessions", "lake_offsets", "log_last_offsets", "wait_until"]


def app_id_prefix(topic_epoch: str = "") -> str:
    """The worker's app-transaction prefix: `rollout-lake`, or `rollout-lake:<epoch>` after a log reset."""
    return f"{DEFAULT_APP_ID}:{topic_epoch}" if topic_epoch else DEFAULT_APP_ID


def ended_sessions(lake_uri: str, *, reader: str = "auto") -> int:
    """Sessions that ended (any status but open) with no missing turn; 0 before the worker created the lake."""
    from lake.exceptions import LakeNotFoundError
    from lake.reader import connect

    try:
        with connect(lake_uri, reader=reader) as lake:  # type: ignore[arg-type]
            row = lake.query(
                "SELECT count(*) FROM sessions WHERE status <> 'open' AND coalesce(missing_turns, 0) = 0"
            ).fetchone()
    except LakeNotFoundError:
        return 0
    return int(row[0])


def lake_offsets(
    lake_uri: str, topic: str, partitions: list[int], *, app_id: str = DEFAULT_APP_ID,
    storage_options: Mapping[str, str] | None = None,
) -> dict[int, int]:
    """Last Kafka offset of each partition folded into the lake (-1: none), the highest over all tables."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from lake.storage import resolve_storage_options

    opts = resolve_storage_options(lake_uri, storage_options)
    done = {p: -1 for p in partitions}
    for name in TABLES:
        try:
            dt = DeltaTable(table_uri(lake_uri, name), storage_options=opts)
        except TableNotFoundError:
            continue
        for p in partitions:
            version = dt.transaction_version(app_id_for(app_id, topic, p))
            if version is not None and version > done[p]:
                done[p] = version
    return done


def log_last_offsets(bootstrap_servers: str, topic: str, *, client_kwargs: Mapping[str, Any] | None = None,
                     timeout_s: float = 30.0) -> dict[int, int]:
    """The offset of the last record of each partition (-1: empty), read from the log itself."""
    return asyncio.run(_log_last_offsets(bootstrap_servers, topic, dict(client_kwargs or {}), timeout_s))


async def _log_last_offsets(bootstrap: str, topic: str, kwargs: dict[str, Any], timeout_s: float) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    from lake.exceptions import LakeError

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **kwargs)
    try:
        await asyncio.wait_for(consumer.start(), timeout_s)
        partitions = await asyncio.wait_for(_partitions(consumer, topic), timeout_s)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        reported = await consumer.end_offsets(tps)
        last: dict[int, int] = {}
        for tp in tps:
            end = reported[tp]
            if end <= 0:
                last[tp.partition] = -1
                continue
            # The reported end may stop at the start of the last batch: read on from just before it.
            consumer.seek(tp, end - 1)
            last[tp.partition] = end - 1
            empty, deadline = 0, time.monotonic() + timeout_s
            while empty < 2 and time.monotonic() < deadline:
                records = (await consumer.getmany(tp, timeout_ms=300)).get(tp, [])
                if records:
                    last[tp.partition] = max(last[tp.partition], records[-1].offset)
                    empty = 0
                else:
                    empty += 1
        return last
    except (KafkaError, asyncio.TimeoutError, OSError) as exc:
        raise LakeError(f"cannot read topic {topic!r} at {bootstrap}: {exc or type(exc).__name__}; "
                        "is the broker running (KAFKA_BOOTSTRAP_SERVERS)?") from exc
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> list[int]:
    for _ in range(3):
        if topic in await consumer.topics():
            found = consumer.partitions_for_topic(topic)
            if found:
                return sorted(found)
        await asyncio.sleep(0.5)
    from lake.exceptions import TopicNotFoundError

    raise TopicNotFoundError(f"topic {topic!r} does not exist on the broker; check ROLLOUT_TOPIC")


def wait_until(
    check: Callable[[], tuple[bool, str]], *, timeout_s: float, interval_s: float = 0.5,
    on_progress: Callable[[str], None] | None = None,
) -> str:
    """Call `check` until it says done; returns its last description, or raises WaitTimeoutError."""
    deadline = time.monotonic() + timeout_s
    last_said = None
    while True:
        done, said = check()
        if done:
            return said
        if on_progress and said != last_said:
            on_progress(said)
            last_said = said
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"timed out after {timeout_s:g} s: {said}; is the worker running "
                "(`faust -A streams.worker.app worker -l info`) with the same LAKE_URI and topic?"
            )
        time.sleep(interval_s)
