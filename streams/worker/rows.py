"""A batch of lake rows built from events, kept column-wise until it is committed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
from pydantic import TypeAdapter

from lake.formats import message_json
from lake.tables import DEAD_LETTERS, MESSAGES, REWARDS, SCHEMAS, SESSIONS, TURNS
from schemas import Judgment, OutcomeReward, ToolCall, Turn

__all__ = ["RowBatch"]

log = logging.getLogger(__name__)
# pydantic-core writes the same compact JSON as json.dumps(..., separators=(",", ":")), faster.
_TOOL_CALLS = TypeAdapter(list[ToolCall])
Source = tuple[str, int, int]  # (topic, partition, offset)

_APPENDED = (MESSAGES, TURNS, REWARDS, DEAD_LETTERS)
_TURN_FIELDS = ("session_id", "turn", "reward", "achievements", "valid", "done", "num_messages", "ts", "event_id", "metadata")
_MESSAGE_FIELDS = ("session_id", "turn", "idx_in_turn", "role", "content", "content_is_parts", "tool_calls",
                   "tool_call_id", "name", "ts", "event_id", "message_json")


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
        # Raw records whose rows are in this batch: a row Arrow refuses turns its record into a
        # dead letter instead of failing the batch.
        self.raw: dict[Source, tuple[bytes | None, bytes | None, int]] = {}
        self.isolated: list[tuple[Source, bytes | None, bytes | None, str]] = []
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
        # Every value is computed before any column grows, so a failure leaves the columns aligned.
        turn_row = (event.session_id, event.turn, event.reward, list(event.achievements), event.valid, event.done,
                    len(event.messages), when, event.event_id, _dumps(event.metadata))
        message_rows = []
        for i, msg in enumerate(event.messages):
            content = msg.content
            is_parts = isinstance(content, list)
            tool_calls = _TOOL_CALLS.dump_json(msg.tool_calls).decode() if msg.tool_calls else None
            message_rows.append((
                event.session_id, event.turn, i, msg.role, _dumps(content) if is_parts else content, is_parts,
                tool_calls, msg.tool_call_id, msg.name, when, event.event_id,
                None if is_parts else message_json(msg.role, content, tool_calls, msg.tool_call_id, msg.name),
            ))
        t = self.columns[TURNS]
        for name, value in zip(_TURN_FIELDS, turn_row):
            t[name].append(value)
        self._source(t, topic, partition, offset)
        m = self.columns[MESSAGES]
        for row in message_rows:
            for name, value in zip(_MESSAGE_FIELDS, row):
                m[name].append(value)
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

    def remember(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, record_ms: int) -> None:
        self.raw[(topic, partition, offset)] = (key, value, record_ms)

    def tables(self) -> Iterable[tuple[str, pa.Table]]:
        """(table name, Arrow rows) for every appended table with rows in this batch.

        A row Arrow cannot hold (edge validation should have caught it) makes its whole record
        a dead letter, listed in `isolated`; the other records of the batch still go in.
        """
        built: dict[str, pa.Table] = {}
        for name in _APPENDED:
            cols = self.columns[name]
            if not cols["kafka_offset"]:
                continue
            try:
                built[name] = pa.Table.from_pydict(cols, schema=SCHEMAS[name])
            except Exception:  # noqa: BLE001 - any conversion error isolates rows, never loses the batch
                self._isolate(name)
                return self.tables()
        return list(built.items())

    def _isolate(self, name: str) -> None:
        cols = self.columns[name]
        schema = SCHEMAS[name]
        bad: dict[Source, str] = {}
        for i in range(len(cols["kafka_offset"])):
            try:
                pa.Table.from_pydict({k: v[i : i + 1] for k, v in cols.items()}, schema=schema)
            except Exception as exc:  # noqa: BLE001
                source = (cols["kafka_topic"][i], cols["kafka_partition"][i], cols["kafka_offset"][i])
                bad.setdefault(source, f"row for table {name} cannot be stored: {type(exc).__name__}: {exc}"[:1000])
        if not bad:
            raise RuntimeError(f"table {name} failed to build but no single row fails")
        for table in _APPENDED:
            c = self.columns[table]
            keep = [
                i for i in range(len(c["kafka_offset"]))
                if (c["kafka_topic"][i], c["kafka_partition"][i], c["kafka_offset"][i]) not in bad
            ]
            for k in c:
                c[k] = [c[k][i] for i in keep]
        for source, error in bad.items():
            key, value, record_ms = self.raw.get(source, (None, None, 0))
            log.error("dead letter at %s/%s/%s: %s", *source, error)
            self.add_dead_letter(error, key, value, *source, record_ms)
            self.isolated.append((source, key, value, error))

    def sessions_table(self) -> pa.Table:
        try:
            return pa.Table.from_pylist(list(self.sessions.values()), schema=SCHEMAS[SESSIONS])
        except Exception:  # noqa: BLE001 - keep every session row Arrow accepts
            good = []
            for row in self.sessions.values():
                try:
                    pa.Table.from_pylist([row], schema=SCHEMAS[SESSIONS])
                    good.append(row)
                except Exception as exc:  # noqa: BLE001
                    log.critical("sessions row of %r cannot be stored and is skipped: %s", row.get("session_id"), exc)
            return pa.Table.from_pylist(good, schema=SCHEMAS[SESSIONS])

    def counts(self) -> dict[str, int]:
        out = {name: len(self.columns[name]["kafka_offset"]) for name in _APPENDED}
        out[SESSIONS] = len(self.sessions)
        return out
