"""Fault-injection fixtures and helpers: the `workers` fixture (worker_factory of tests/conftest.py),
and helpers to know when a worker has read everything (sentinel sessions, one per partition), to
build a poisoned workload, and to compare tables whole."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from streams.devtools.synthetic import make_sessions, poison_records, to_records
from tests.conftest import KEYS, Worker, lake_counts, read

__all__ = ["table_rows", "workload", "publish_sentinels", "sentinels_in", "exact", "expected", "explain_loss"]


def table_rows(lake: str, name: str, *, drop: tuple[str, ...] = ()) -> list[tuple]:
    """Every row of a table as a sorted list of tuples (for exact before/after comparisons)."""
    t = read(lake, name)
    cols = [c for c in t.column_names if c not in drop]
    rows = t.select(cols).to_pylist()
    return sorted((tuple(json.dumps(r[c], default=str, sort_keys=True) for c in cols) for r in rows))


def workload(seed: int, n_sessions: int = 300, *, poison: bool = True, shuffle: bool = True):
    """Sessions (20 turns), their records with 5% duplicates and early rewards, and 1% poison."""
    sessions = make_sessions(n_sessions, 20, seed=seed, obs_chars=200)
    records = to_records(sessions, seed=seed, duplicate_rate=0.05, early_reward_rate=0.1, shuffle=shuffle)
    bad = poison_records(max(1, len(records) // 100), seed=seed) if poison else []
    records += bad
    if shuffle:
        random.Random(seed).shuffle(records)
    return sessions, records, bad


def _sentinel(tag: str, partition: int) -> list[tuple[bytes, bytes]]:
    sid = f"sentinel-{tag}-p{partition}"
    start = {"schema_version": 1, "type": "session_start", "event_id": f"{sid}-0", "session_id": sid, "env_name": "sentinel"}
    turn = {"schema_version": 1, "type": "turn", "event_id": f"{sid}-1", "session_id": sid, "turn": 0,
            "messages": [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]}
    return [(sid.encode(), json.dumps(e).encode()) for e in (start, turn)]


def publish_sentinels(bootstrap: str, topic: str, tag: str, partitions: int = 4) -> list[str]:
    """One tiny session per partition, published after everything else: once all of them are in
    the lake, the worker has read every partition past what came before (offsets are in order)."""
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            futures = [await producer.send(topic, value=v, key=k, partition=p)
                       for p in range(partitions) for k, v in _sentinel(tag, p)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())
    return [f"sentinel-{tag}-p{p}" for p in range(partitions)]


def sentinels_in(lake: str, sids: list[str]) -> bool:
    """Whether the sentinel sessions are in `turns` and in `sessions` (MERGEd right after the
    appends of the same batch, so a reader can see the turns a moment before)."""
    try:
        tables = [read(lake, name) for name in ("turns", "sessions")]
    except Exception:
        return False
    return all(set(sids) <= set(t.column("session_id").to_pylist()) for t in tables)


def exact(lake: str, want: dict[str, int]) -> None:
    """Exact row counts, and no natural key twice in any table."""
    got = lake_counts(lake)
    assert {k: got[k] for k in want} == want, f"lake counts {got} != expected {want}"
    for name, keys in KEYS.items():
        t = read(lake, name)
        assert t.group_by(keys).aggregate([]).num_rows == t.num_rows, f"duplicate rows in {name}"


def expected(sessions, n_poison: int = 0, extra: dict[str, int] | None = None) -> dict[str, Any]:
    from streams.devtools.synthetic import expected_counts

    want = expected_counts(sessions)
    want["dead_letters"] = n_poison
    for k, v in (extra or {}).items():
        want[k] = want.get(k, 0) + v
    return want


@pytest.fixture
def workers(worker_factory):
    """worker_factory with a free web port per worker: Faust binds its web server (6066 by default)
    even with web_enabled off, so a second worker on the machine would die at start."""
    from streams.devtools.broker import free_port

    def make(topic: str, lake: str, **extra: str) -> Worker:
        extra.setdefault("WEB_PORT", str(free_port()))
        return worker_factory(topic, lake, **extra)

    return make


def explain_loss(lake: str, sessions, bootstrap: str, topic: str, group: str) -> str:
    """When counts are short: which turns are missing, where they sit in the topic, what the
    group committed, which Delta txn versions each commit recorded, and the session states
    the changelog holds for them. Returned as text for the assertion message."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    have = {(r["session_id"], r["turn"]) for r in read(lake, "turns").select(["session_id", "turn"]).to_pylist()}
    missing = sorted({(s.session_id, e["turn"]) for s in sessions for e in s.events if e["type"] == "turn"} - have)
    if not missing:
        return "no turn missing"
    sids = {sid for sid, _ in missing}
    lines = [f"missing turns: {missing[:10]}"]

    async def scan() -> None:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=group,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
        await c.start()
        try:
            for name in (topic, f"{group}-session-state-changelog"):
                parts = c.partitions_for_topic(name) or set()
                tps = [TopicPartition(name, p) for p in sorted(parts)]
                if not tps:
                    lines.append(f"{name}: no partitions")
                    continue
                if name == topic:
                    committed = {tp.partition: await c.committed(tp) for tp in tps}
                    lines.append(f"group {group} committed offsets: {committed}")
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                ends = await c.end_offsets(tps)
                done: set = set()
                for _ in range(400):
                    got = await c.getmany(timeout_ms=200, max_records=10_000)
                    for tp, msgs in got.items():
                        for m in msgs:
                            key = (m.key or b"").decode(errors="replace")
                            if key in sids:
                                value = m.value.decode(errors="replace") if m.value else None
                                if name == topic:
                                    try:
                                        d = json.loads(value)
                                        value = f"{d.get('type')} turn={d.get('turn')} id={d.get('event_id')}"
                                    except (TypeError, ValueError):
                                        pass
                                lines.append(f"{name}[{tp.partition}]@{m.offset}: {value[:300] if value else value}")
                        if msgs and msgs[-1].offset + 1 >= ends[tp]:
                            done.add(tp)
                    if len(done) == len([tp for tp in tps if ends[tp] > 0]):
                        break
        finally:
            await c.stop()

    try:
        asyncio.run(scan())
    except Exception as exc:  # diagnostics must not hide the real failure
        lines.append(f"(scan failed: {exc!r})")
    from pathlib import Path

    from bench.common import delta_commits

    for c in delta_commits(Path(lake) / "turns"):
        log = Path(lake) / "turns" / "_delta_log" / f"{c['version']:020d}.json"
        txns = [json.loads(l)["txn"] for l in log.read_text().splitlines() if '"txn"' in l]
        lines.append(f"turns v{c['version']} rows={sum(a['rows'] or 0 for a in c['adds'])} txns={[(t['appId'].rsplit(':', 1)[-1], t['version']) for t in txns]}")
    return "\n".join(lines)
