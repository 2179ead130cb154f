"""Open sessions: a bounded in-memory cache of session state, rebuilt from the lake on demand.

The lake is the only truth. A worker holds the state of the sessions it is still assembling;
a session leaves memory once its finalized row is committed and `EVICT_AFTER_S` passed. An event
for a session not in memory (evicted long ago, or owned by another worker before a rebalance)
is resolved against the lake first, in one batched look-up per record batch, so a duplicate of
a turn written a week ago still makes no row and a late reward still lands on its session.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from lake.tables import REWARDS, SCHEMAS, SESSIONS, TURNS, table_uri
from streams.worker.assembly import SessionState, state_from_lake

__all__ = ["CachedSession", "KnownSessions", "LakeSessions", "OpenSessions"]

log = logging.getLogger(__name__)

_SESSION_COLUMNS = [
    "session_id", "env_name", "policy_name", "model", "task_id", "split", "seed", "run_id", "status",
    "finalized", "num_turns", "started_at", "ended_at", "tools", "metadata", "last_event_at", "last_offset",
    "kafka_topic", "kafka_partition",
]
_TURN_COLUMNS = ["session_id", "turn", "reward", "achievements", "kafka_offset"]
_REWARD_COLUMNS = ["session_id", "kind", "event_id", "objective", "total_reward", "achievements", "label", "ts", "kafka_offset"]


@dataclass
class CachedSession:
    """One open session in the cache: its state, what the lake was last told, when it may leave."""

    state: SessionState
    written_status: tuple[str, bool] | None = None  # (status, finalized) of the last row handed to a commit
    evict_at: float | None = None  # set once a finalized row is committed


class OpenSessions:
    """session_id -> state for the sessions this worker is assembling; nothing else."""

    def __init__(self) -> None:
        self._by_id: dict[str, CachedSession] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._by_id

    def get(self, session_id: str) -> SessionState | None:
        entry = self._by_id.get(session_id)
        return None if entry is None else entry.state

    def put(self, session_id: str, state: SessionState) -> None:
        entry = self._by_id.get(session_id)
        if entry is None:
            self._by_id[session_id] = CachedSession(state)
        else:
            entry.state = state
            entry.evict_at = None  # changed again: it stays until its new row is committed

    def entries(self) -> Iterable[tuple[str, CachedSession]]:
        return list(self._by_id.items())

    def mark_written(self, session_id: str, status: tuple[str, bool]) -> None:
        """The (status, finalized) of the session's row last handed to a commit."""
        entry = self._by_id.get(session_id)
        if entry is not None:
            entry.written_status = status

    def expire(self, session_id: str, at: float) -> None:
        """A session read back from the lake already finalized: it may leave memory at `at`
        unless an event changes it first (a late duplicate must not pin it here)."""
        entry = self._by_id.get(session_id)
        if entry is not None:
            entry.evict_at = at

    def committed(self, rows: Iterable[dict[str, Any]], *, now: float, evict_after_s: float, dirty: set[str]) -> None:
        """Finalized rows are in the lake: their sessions may leave memory after a while."""
        for row in rows:
            entry = self._by_id.get(row["session_id"])
            if entry is not None and row["finalized"] and row["session_id"] not in dirty:
                entry.evict_at = now + evict_after_s

    def evict(self, now: float, *, keep: set[str]) -> int:
        gone = [sid for sid, e in self._by_id.items() if e.evict_at is not None and e.evict_at <= now and sid not in keep]
        for sid in gone:
            del self._by_id[sid]
        return len(gone)

    def drop_partitions(self, tps: set[tuple[str, int]]) -> None:
        for sid in [sid for sid, e in self._by_id.items() if (e.state.topic, e.state.partition) in tps]:
            del self._by_id[sid]


class KnownSessions:
    """A Bloom filter of the session ids the lake holds: "no" is certain, "maybe" asks the lake.

    Without it, every batch that starts new sessions scans the `sessions` table for their ids,
    a cost that grows with the lake. Filled from the table once per assignment and from every
    committed batch after. When a layer fills, a twice larger one with half the error rate is
    added (a scalable Bloom filter), so the false-positive rate stays under `error`, at about
    11 MB per million ids of capacity (one byte per bit, for vectorised numpy updates). Hashes are Python's
    own, so the filter only lives in this process's memory.
    """

    def __init__(self, capacity: int = 1 << 16, error: float = 0.01) -> None:
        self.error = error
        self._layers: list[tuple[np.ndarray, int, int]] = []  # (bits, n_hashes, capacity)
        self._count = 0  # ids added to the newest layer
        self._add_layer(capacity, error / 2)

    def _add_layer(self, capacity: int, error: float) -> None:
        n_bits = max(64, math.ceil(-capacity * math.log(error) / math.log(2) ** 2))
        n_hashes = max(1, round(n_bits / capacity * math.log(2)))
        self._layers.append((np.zeros(n_bits, dtype=np.bool_), n_hashes, capacity))
        self._count = 0

    @staticmethod
    def _positions(sids: list[str], n_bits: int, n_hashes: int) -> np.ndarray:
        h = np.fromiter((hash(s) for s in sids), dtype=np.int64, count=len(sids)).view(np.uint64)
        h1, h2 = h & np.uint64(0xFFFFFFFF), (h >> np.uint64(32)) | np.uint64(1)
        return (h1[:, None] + np.arange(n_hashes, dtype=np.uint64)[None, :] * h2[:, None]) % np.uint64(n_bits)

    def contains(self, sids: list[str]) -> np.ndarray:
        """One bool per id: whether the lake may hold it."""
        found = np.zeros(len(sids), dtype=np.bool_)
        if sids:
            for bits, n_hashes, _ in self._layers:
                found |= bits[self._positions(sids, len(bits), n_hashes)].all(axis=1)
        return found

    def __contains__(self, sid: str) -> bool:
        return bool(self.contains([sid])[0])

    def update(self, sids: Iterable[str]) -> None:
        sids = list(sids)
        while sids:
            bits, n_hashes, capacity = self._layers[-1]
            if self._count >= capacity:
                self._add_layer(capacity * 2, self.error * 0.5 ** len(self._layers))
                continue
            chunk, sids = sids[: capacity - self._count], sids[capacity - self._count :]
            bits[self._positions(chunk, len(bits), n_hashes)] = True
            self._count += len(chunk)

    def add(self, sid: str) -> None:
        self.update([sid])


class LakeSessions:
    """Reads session state back from the lake's Delta tables (runs in a worker thread)."""

    def __init__(self, lake_uri: str, *, storage_options: dict[str, str] | None = None) -> None:
        self.lake_uri = lake_uri
        self.storage_options = storage_options
        self._tables: dict[str, DeltaTable] = {}

    def _dataset(self, name: str) -> ds.Dataset | None:
        dt = self._tables.get(name)
        try:
            if dt is None:
                dt = self._tables[name] = DeltaTable(table_uri(self.lake_uri, name), storage_options=self.storage_options)
            else:
                dt.update_incremental()
        except TableNotFoundError:
            return None
        # Plain string columns (delta-rs would read string_view, which file-statistics pruning
        # cannot compare with the string statistics); the worker added any newer column at start.
        return dt.to_pyarrow_dataset(schema=SCHEMAS[name])

    def count(self, name: str) -> int:
        dataset = self._dataset(name)
        return 0 if dataset is None else dataset.count_rows()

    def _rows(self, name: str, columns: list[str], session_ids: list[str]) -> list[dict[str, Any]]:
        dataset = self._dataset(name)
        if dataset is None:
            return []
        have = set(dataset.schema.names)
        wanted = pa.array(session_ids, type=pa.string())
        # Filtered batch by batch, not pushed down: delta-rs's file statistics are typed
        # string_view and Arrow cannot compare them with a string filter.
        out: list[dict[str, Any]] = []
        for batch in dataset.to_batches(columns=[c for c in columns if c in have]):
            mask = pc.is_in(batch.column("session_id").cast(pa.string()), value_set=wanted)
            if pc.any(mask).as_py():
                out.extend(batch.filter(mask).to_pylist())
        return out

    def scan_ids(self, topic: str, partitions: list[int], known: KnownSessions | None = None) -> list[str]:
        """Ids of the unfinalized sessions of these partitions; every id the lake holds goes to `known`.

        All ids, not only these partitions': a producer that picks partitions by hand can spread
        one session over several, and such a session must still be found.
        """
        dataset = self._dataset(SESSIONS)
        if dataset is None:
            return []
        names = set(dataset.schema.names)
        by_partition = "kafka_partition" in names
        columns = ["session_id", "finalized", *(["kafka_topic", "kafka_partition"] if by_partition else [])]
        out: list[str] = []
        for batch in dataset.to_batches(columns=columns):
            ids = batch.column("session_id").cast(pa.string())
            if known is not None:
                known.update(ids.to_pylist())
            if not by_partition:
                continue
            mask = pc.and_(
                pc.and_(pc.equal(batch.column("kafka_topic").cast(pa.string()), topic),
                        pc.is_in(batch.column("kafka_partition"), value_set=pa.array(partitions, type=pa.int32()))),
                pc.invert(pc.fill_null(batch.column("finalized"), False)),
            )
            out.extend(ids.filter(mask).to_pylist())
        return out

    def load(
        self, session_ids: list[str], *, topic: str, partition_of: dict[str, int]
    ) -> dict[str, tuple[SessionState, tuple[str, bool]]]:
        """State and stored (status, finalized) of each session of `session_ids` the lake knows."""
        if not session_ids:
            return {}
        ids = sorted(set(session_ids))
        # A session the lake knows has a sessions row: each batch ends with their MERGE, and a
        # crash before it is replayed from the log (which rebuilds the state from the turns again).
        # Most ids of a batch are new sessions: one pass over the id column says so cheaply.
        known = sorted(r["session_id"] for r in self._rows(SESSIONS, ["session_id"], ids))
        if not known:
            return {}
        rows = {r["session_id"]: r for r in self._rows(SESSIONS, _SESSION_COLUMNS, known)}
        turns: dict[str, list[dict[str, Any]]] = {sid: [] for sid in known}
        for t in self._rows(TURNS, _TURN_COLUMNS, known):
            turns[t["session_id"]].append(t)
        rewards: dict[str, list[dict[str, Any]]] = {sid: [] for sid in known}
        for r in self._rows(REWARDS, _REWARD_COLUMNS, known):
            rewards[r["session_id"]].append(r)
        return {
            sid: (
                state_from_lake(rows[sid], turns[sid], rewards[sid], session_id=sid, topic=topic,
                                partition=partition_of.get(sid, -1)),
                (rows[sid]["status"], bool(rows[sid]["finalized"])),
            )
            for sid in known
        }
