"""Replaying every event changes nothing; every kind of poison lands as a dead letter with its reason."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from schemas.kafka import dead_letter_topic_for
from streams.devtools.synthetic import poison_records
from tests.conftest import lake_counts, publish, read, wait_for
from tests.faults.conftest import exact, expected, publish_sentinels, sentinels_in, table_rows, workload

pytestmark = pytest.mark.fault

SENTINEL = {"sessions": 4, "turns": 4, "messages": 8}  # what one round of publish_sentinels adds


def test_full_replay_of_every_event_adds_no_rows(broker, topic_factory, lake_uri_factory, workers):
    sessions, records, poison = workload(seed=41, n_sessions=120)
    topic, lake = topic_factory(), lake_uri_factory()
    bootstrap = broker.bootstrap_servers
    first = workers(topic, lake, group=f"g-replay-{uuid.uuid4().hex[:6]}")
    publish(bootstrap, topic, records)
    done = publish_sentinels(bootstrap, topic, "initial")
    want = expected(sessions, len(poison), SENTINEL)
    wait_for(lambda: lake_counts(lake) == want and sentinels_in(lake, done), 180, "the first ingestion", [first])
    exact(lake, want)
    before = snapshot_rows(lake)

    # 1. The same records published again (new offsets), same group: every one is a duplicate.
    clean = [r for r in records if r not in set(poison)]  # poison re-sent is new dead letters, by design
    publish(bootstrap, topic, clean)
    again = publish_sentinels(bootstrap, topic, "republished")
    wait_for(lambda: sentinels_in(lake, again), 180, "the worker to read the republished records", [first])
    exact(lake, expected(sessions, len(poison), {k: 2 * v for k, v in SENTINEL.items()}))
    assert snapshot_rows(lake) == before

    # 2. A new consumer group on the same topic and lake reads everything from offset 0 with an
    #    empty session state: the Delta app transactions say it is all in, so nothing is added.
    first.stop()
    second = workers(topic, lake, group=f"g-replay-new-{uuid.uuid4().hex[:6]}")
    last = publish_sentinels(bootstrap, topic, "new-group")
    wait_for(lambda: sentinels_in(lake, last), 180, "the new group to read the whole topic", [second])
    exact(lake, expected(sessions, len(poison), {k: 3 * v for k, v in SENTINEL.items()}))
    assert snapshot_rows(lake) == before


def snapshot_rows(lake: str) -> dict[str, list[tuple]]:
    """Every non-sentinel row of every table (sessions without updated_at: a MERGE may rewrite a
    row with the same content)."""
    out = {}
    for name in ("sessions", "turns", "messages", "rewards", "dead_letters"):
        rows = table_rows(lake, name, drop=("updated_at",))
        out[name] = [r for r in rows if not any("sentinel-" in x for x in r)]
    return out


# (substring of the error) per poison kind, in streams.devtools.synthetic.poison_records order.
POISON_ERRORS = [
    "record is not UTF-8 JSON",
    "field `type` = 'teleport': expected one of session_start, turn, session_end, outcome_reward, judgment",
    "field `schema_version` = 2: expected 1",
    "field `turn` = 'zero'",
    "field `event_id` = None: required field is missing",
    "over the 200000-byte limit",
    "record is not UTF-8 JSON",
    "record is a JSON list, expected an object",
    "record key b'other-key' does not match session_id 'p'",
]


def test_poison_of_every_kind_lands_in_dead_letters_with_its_error(broker, topic_factory, lake_uri_factory, workers):
    kinds = len(POISON_ERRORS)
    poison = poison_records(2 * kinds, seed=42)  # every kind twice
    sessions, records, _ = workload(seed=42, n_sessions=20, poison=False)
    topic, lake = topic_factory(), lake_uri_factory()
    mixed = records[: len(records) // 2] + poison + records[len(records) // 2 :]
    publish(broker.bootstrap_servers, topic, mixed)
    w = workers(topic, lake)
    want = expected(sessions, len(poison))
    wait_for(lambda: lake_counts(lake) == want, 120, "every record in the lake", [w])
    exact(lake, want)

    dead = read(lake, "dead_letters").to_pylist()
    assert len(dead) == len(poison)
    by_raw: dict[bytes, list[dict]] = {}
    for d in dead:
        by_raw.setdefault(d["raw"], []).append(d)
    for i, (key, value) in enumerate(poison):
        rows = by_raw.get(value)
        assert rows, f"poison kind {i % kinds} ({value[:40]!r}) is not in dead_letters"
        row = rows.pop()
        assert POISON_ERRORS[i % kinds] in row["error"], f"kind {i % kinds}: {row['error']!r}"
        assert row["key"] == key and row["kafka_topic"] == topic and row["kafka_offset"] >= 0
    # Valid events around the poison are untouched: exact counts above.

    # The dead-letter topic carries the same records, each with its error and source headers.
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read_dlq() -> list:
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=2 * 1024 * 1024)
        await c.start()
        try:
            tp = TopicPartition(dead_letter_topic_for(topic), 0)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            out = []
            for _ in range(40):
                got = await c.getmany(tp, timeout_ms=250)
                out += got.get(tp, [])
                if len(out) >= len(poison):
                    break
            return out
        finally:
            await c.stop()

    dlq = asyncio.run(read_dlq())
    assert sorted(m.value for m in dlq) == sorted(v for _, v in poison)
    errors = {(m.value, dict(m.headers)["error"].decode()) for m in dlq}
    assert errors == {(d["raw"], d["error"][:1000]) for d in dead}
    assert all(dict(m.headers)["source"].decode().startswith(f"{topic}/") for m in dlq)
