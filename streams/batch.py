"""A batch of lake rows built from events, kept column-wise until it is committed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from lake.tables import DEAD_LETTERS, MESSAGES, REWARDS, SCHEMAS, SESSIONS, TURNS
from schemas import Judgment, OutcomeReward, Turn

__all__ = ["RowBatch"]

_APPENDED = (MESSAGES, TURNS, REWARDS, DEAD_LETTERS)


def _dumps(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _when(ts: datetime | None, record_ms: int) -> datetime:
    return ts if ts is not None else datetime.fromtimestamp(record_ms / 1000, tz=timezone.utc)


class RowBatch:
    """Rows for every table plus the Kafka progress they cover; one batch is one commit per table."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, list[Any]]] = {
            name: {f.name: [] for f in SCHEMAS[name]} for name in _APPENDED
        }
        self.sessions: dict[str, dict[str, Any]] = {}  # session_id -> latest sessions row
        self.dirty_sessions: set[str] = set()  # rows built once per batch, at flush
        self.offsets: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset folded
        self.events: list[Any] = []  # Faust events to ack once the batch is committed
        self.approx_bytes = 0
        self.first_added: float | None = None

    # -- adding -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(len(cols["kafka_offset"]) for cols in self.columns.values()) + len(self.sessions)

    def track(self, topic: str, partition: int, offset: int, size: int, now: float) -> None:
        key = (topic, partition)
        if offset > self.offsets.get(key, -1):
            self.offsets[key] = offset
        self.approx_bytes += size
        if self.first_added is None:
            self.first_added = now

    def touch(self, now: float) -> None:
        """Start the latency clock for rows that come from no record (timer-made session rows)."""
        if self.first_added is None:
            self.first_added = now

    def _source(self, cols: dict[str, list[Any]], topic: str, partition: int, offset: int) -> None:
        cols["kafka_topic"].append(topic)
        cols["kafka_partition"].append(partition)
        cols["kafka_offset"].append(offset)

    def add_turn(self, event: Turn, topic: str, partition: int, offset: int, record_ms: int) -> None:
        when = _when(event.ts, record_ms)
        t = self.columns[TURNS]
        t["session_id"].append(event.session_id)
        t["turn"].append(event.turn)
        t["reward"].append(event.reward)
        t["achievements"].append(list(event.achievements))
        t["valid"].append(event.valid)
        t["done"].append(event.done)
        t["num_messages"].append(len(event.messages))
        t["ts"].append(when)
        t["event_id"].append(event.event_id)
        t["metadata"].append(_dumps(event.metadata))
        self._source(t, topic, partition, offset)
        m = self.columns[MESSAGES]
        for i, msg in enumerate(event.messages):
            content = msg.content
            is_parts = isinstance(content, list)
            m["session_id"].append(event.session_id)
            m["turn"].append(event.turn)
            m["idx_in_turn"].append(i)
            m["role"].append(msg.role)
            m["content"].append(_dumps(content) if is_parts else content)
            m["content_is_parts"].append(is_parts)
            m["tool_calls"].append(
                _dumps([c.model_dump() for c in msg.tool_calls]) if msg.tool_calls else None
            )
            m["tool_call_id"].append(msg.tool_call_id)
            m["name"].append(msg.name)
            m["ts"].append(when)
            m["event_id"].append(event.event_id)
            self._source(m, topic, partition, offset)

    def add_reward(self, event: OutcomeReward | Judgment, topic: str, partition: int, offset: int, record_ms: int) -> None:
        r = self.columns[REWARDS]
        is_outcome = isinstance(event, OutcomeReward)
        r["session_id"].append(event.session_id)
        r["kind"].append(event.type)
        r["event_id"].append(event.event_id)
        r["objective"].append(event.objective if is_outcome else None)
        r["total_reward"].append(event.total_reward if is_outcome else None)
        r["achievements"].append(list(event.achievements) if is_outcome else None)
        r["label"].append(None if is_outcome else event.label)
        r["score"].append(None if is_outcome else event.score)
        r["source"].append(event.source)
        r["reason"].append(None if is_outcome else event.reason)
        r["ts"].append(_when(event.ts, record_ms))
        r["metadata"].append(_dumps(event.metadata))
        self._source(r, topic, partition, offset)

    def add_dead_letter(
        self, error: str, key: bytes | None, raw: bytes | None, topic: str, partition: int, offset: int, record_ms: int
    ) -> None:
        d = self.columns[DEAD_LETTERS]
        d["error"].append(error)
        d["key"].append(key)
        d["raw"].append(raw)
        d["received_at"].append(datetime.fromtimestamp(record_ms / 1000, tz=timezone.utc))
        self._source(d, topic, partition, offset)

    def set_session(self, row: dict[str, Any]) -> None:
        self.sessions[row["session_id"]] = row

    # -- reading ----------------------------------------------------------------------------

    def tables(self) -> Iterable[tuple[str, pa.Table]]:
        """(table name, Arrow rows) for every appended table with rows in this batch."""
        for name in _APPENDED:
            cols = self.columns[name]
            if cols["kafka_offset"]:
                yield name, pa.Table.from_pydict(cols, schema=SCHEMAS[name])

    def sessions_table(self) -> pa.Table:
        return pa.Table.from_pylist(list(self.sessions.values()), schema=SCHEMAS[SESSIONS])

    def counts(self) -> dict[str, int]:
        out = {name: len(self.columns[name]["kafka_offset"]) for name in _APPENDED}
        out[SESSIONS] = len(self.sessions)
        return out
