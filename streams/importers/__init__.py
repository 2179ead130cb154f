"""Importers: existing traces replayed as v1 events through Kafka, so they take the exactly-once path.

Ids are derived from the source, so importing the same traces twice adds nothing to the lake.
"""

from streams.importers.common import ImportedSession, stable_id
from streams.importers.exceptions import ImportRowError, ImportSourceError
from streams.importers.replay import ReplayReport, replay
from streams.importers.sft_jsonl import read_sft_jsonl
from streams.importers.synth_sqlite import count_synth_sessions, read_synth_sqlite

__all__ = [
    "ImportRowError",
    "ImportSourceError",
    "ImportedSession",
    "ReplayReport",
    "count_synth_sessions",
    "read_sft_jsonl",
    "read_synth_sqlite",
    "replay",
    "stable_id",
]
