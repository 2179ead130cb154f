"""The Delta tables of the lake: names and Arrow schemas (the storage contract)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "SESSIONS",
    "TURNS",
    "MESSAGES",
    "REWARDS",
    "DEAD_LETTERS",
    "TABLES",
    "SCHEMAS",
    "TS",
    "table_uri",
]

SESSIONS = "sessions"
TURNS = "turns"
MESSAGES = "messages"
REWARDS = "rewards"
DEAD_LETTERS = "dead_letters"
TABLES = (SESSIONS, TURNS, MESSAGES, REWARDS, DEAD_LETTERS)


def _build() -> dict[str, Any]:
    """The Arrow schemas, built on first use: pyarrow costs a small snapshot 0.2 s to import."""
    import pyarrow as pa

    TS = pa.timestamp("us", tz="UTC")
    _STRINGS = pa.list_(pa.string())

    # Where each row came from in Kafka: lineage, and the key of the exactly-once check.
    _SOURCE = [
        pa.field("kafka_topic", pa.string()),
        pa.field("kafka_partition", pa.int32()),
        pa.field("kafka_offset", pa.int64()),
    ]

    SCHEMAS: dict[str, pa.Schema] = {
        # One row per session, upserted (MERGE) whenever the session's state changes.
        SESSIONS: pa.schema(
            [
                pa.field("session_id", pa.string(), nullable=False),
                pa.field("env_name", pa.string()),
                pa.field("policy_name", pa.string()),
                pa.field("model", pa.string()),
                pa.field("task_id", pa.string()),
                pa.field("split", pa.string()),
                pa.field("seed", pa.int64()),
                pa.field("run_id", pa.string()),
                # terminated | truncated | error | abandoned | open
                pa.field("status", pa.string()),
                pa.field("finalized", pa.bool_()),
                pa.field("num_turns", pa.int64()),
                pa.field("turns_received", pa.int64()),
                pa.field("missing_turns", pa.int64()),
                pa.field("started_at", TS),
                pa.field("ended_at", TS),
                pa.field("total_reward", pa.float64()),
                pa.field("step_reward_sum", pa.float64()),
                pa.field("achievements", _STRINGS),
                pa.field("achievements_count", pa.int64()),
                pa.field("judgment", pa.string()),
                pa.field("tools", pa.string()),  # JSON array, OpenAI tool specs
                pa.field("metadata", pa.string()),  # JSON object
                pa.field("last_event_at", TS),
                pa.field("updated_at", TS),
                # Highest Kafka offset folded into this row: an older state never overwrites a newer.
                pa.field("last_offset", pa.int64()),
                # The partition the session's records come from (key = session_id): a worker that is
                # assigned it rebuilds the session's state from the lake.
                pa.field("kafka_topic", pa.string()),
                pa.field("kafka_partition", pa.int32()),
            ]
        ),
        TURNS: pa.schema(
            [
                pa.field("session_id", pa.string(), nullable=False),
                pa.field("turn", pa.int64(), nullable=False),
                pa.field("reward", pa.float64()),
                pa.field("achievements", _STRINGS),
                pa.field("valid", pa.bool_()),
                pa.field("done", pa.bool_()),
                pa.field("num_messages", pa.int64()),
                pa.field("ts", TS),
                pa.field("event_id", pa.string()),
                pa.field("metadata", pa.string()),
                *_SOURCE,
            ]
        ),
        # Messages are stored per turn; the `messages` view adds `idx`, the position in the session.
        MESSAGES: pa.schema(
            [
                pa.field("session_id", pa.string(), nullable=False),
                pa.field("turn", pa.int64(), nullable=False),
                pa.field("idx_in_turn", pa.int64(), nullable=False),
                pa.field("role", pa.string()),
                pa.field("content", pa.string()),  # text, or JSON of the parts list
                pa.field("content_is_parts", pa.bool_()),
                pa.field("tool_calls", pa.string()),  # JSON array or null
                pa.field("tool_call_id", pa.string()),
                pa.field("name", pa.string()),
                pa.field("ts", TS),
                pa.field("event_id", pa.string()),
                *_SOURCE,
                # The message as a snapshot line holds it (lake.formats.message_json), rendered once at
                # ingest; null for rows written before the column existed and for parts-list content.
                pa.field("message_json", pa.string()),
            ]
        ),
        # Every outcome_reward and judgment as received, late ones included.
        REWARDS: pa.schema(
            [
                pa.field("session_id", pa.string(), nullable=False),
                pa.field("kind", pa.string()),  # outcome_reward | judgment
                pa.field("event_id", pa.string()),
                pa.field("objective", pa.string()),
                pa.field("total_reward", pa.float64()),
                pa.field("achievements", _STRINGS),
                pa.field("label", pa.string()),
                pa.field("score", pa.float64()),
                pa.field("source", pa.string()),
                pa.field("reason", pa.string()),
                pa.field("ts", TS),
                pa.field("metadata", pa.string()),
                *_SOURCE,
            ]
        ),
        DEAD_LETTERS: pa.schema(
            [
                pa.field("error", pa.string()),
                pa.field("key", pa.binary()),
                pa.field("raw", pa.binary()),
                pa.field("received_at", TS),
                *_SOURCE,
            ]
        ),
    }
    return {"TS": TS, "SCHEMAS": SCHEMAS}


def __getattr__(name: str) -> Any:
    if name in ("TS", "SCHEMAS"):
        globals().update(_build())
        return globals()[name]
    raise AttributeError(f"module 'lake.tables' has no attribute {name!r}")


def table_uri(lake_uri: str, table: str) -> str:
    """The URI of one table under the lake root (a local dir or s3://bucket/prefix)."""
    return f"{str(lake_uri).rstrip('/')}/{table}"
