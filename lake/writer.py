"""Exactly-once appends to the lake's Delta tables, keyed by Kafka (topic, partition) offsets.

Each commit carries one Delta app transaction per source partition whose version is the last
Kafka offset folded into that commit. Before every write the writer refreshes the same
DeltaTable object it commits with, reads those versions and drops rows at or below them; after
a commit error it reloads and checks again, because an error can hide a commit that succeeded.
delta-rs itself does not skip a repeated app_id/version, so this check is what makes replay safe.
Several workers may commit to one table at once (each with its own partitions' app ids): delta-rs
rebases a plain append on the other's commit itself; a conflict it cannot resolve (a MERGE
whose files another commit touched) comes back as CommitFailedError and is run again here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Field, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from lake.storage import resolve_storage_options
from lake.tables import SCHEMAS, SESSIONS, TABLES, table_uri

__all__ = ["LakeWriter", "TopicPartition", "app_id_for"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
DEFAULT_APP_ID = "rollout-lake"


def app_id_for(prefix: str, topic: str, partition: int) -> str:
    """The Delta app-transaction id that records progress of one Kafka partition."""
    return f"{prefix}:{topic}:{partition}"


class LakeWriter:
    """Writes rows to the lake's tables, each commit tagged with the Kafka offsets it covers."""

    def __init__(
        self,
        lake_uri: str,
        *,
        app_id: str = DEFAULT_APP_ID,
        storage_options: Mapping[str, str] | None = None,
        max_attempts: int = 5,
        max_conflicts: int = 100,
    ) -> None:
        self.lake_uri = str(lake_uri)
        self.app_id = app_id
        # Default: the environment's object-store options for an s3:// lake (lake.storage).
        self.storage_options = resolve_storage_options(self.lake_uri, storage_options)
        self.max_attempts = max_attempts
        self.max_conflicts = max_conflicts
        self._tables: dict[str, DeltaTable] = {}

    # -- tables -----------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        """Create any missing table with its schema, and add columns a newer schema has."""
        for name in TABLES:
            dt = self.table(name)
            have = {f.name for f in dt.schema().fields}
            missing = [f for f in SCHEMAS[name] if f.name not in have]
            if missing:
                log.info("adding columns %s to %s", [f.name for f in missing], name)
                dt.alter.add_columns([Field.from_arrow(f) for f in missing])
                dt.update_incremental()

    def table(self, name: str) -> DeltaTable:
        """The cached DeltaTable for `name`, created on first use."""
        dt = self._tables.get(name)
        if dt is None:
            uri = table_uri(self.lake_uri, name)
            try:
                dt = DeltaTable(uri, storage_options=self.storage_options)
            except TableNotFoundError:
                # mode="ignore" makes a concurrent create by another worker harmless.
                DeltaTable.create(
                    uri, SCHEMAS[name], mode="ignore", name=name, storage_options=self.storage_options
                )
                dt = DeltaTable(uri, storage_options=self.storage_options)
            self._tables[name] = dt
        return dt

    def _refresh(self, name: str) -> DeltaTable:
        dt = self.table(name)
        dt.update_incremental()
        return dt

    # -- offsets ----------------------------------------------------------------------------

    def committed_offsets(self, name: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Last Kafka offset folded into table `name` for each partition (-1 if none)."""
        dt = self._refresh(name)
        return {tp: self._version(dt, tp) for tp in partitions}

    def _version(self, dt: DeltaTable, tp: TopicPartition) -> int:
        version = dt.transaction_version(app_id_for(self.app_id, *tp))
        return -1 if version is None else version

    # -- writes -----------------------------------------------------------------------------

    def append(self, name: str, rows: pa.Table, *, offsets: Mapping[TopicPartition, int]) -> int:
        """Append the rows not yet in table `name`; returns how many were written.

        `rows` carries kafka_topic/kafka_partition/kafka_offset columns; `offsets` is the last
        offset folded into this batch per partition (it may exceed the last row's offset).
        """
        rows = rows.cast(SCHEMAS[name]) if rows.schema != SCHEMAS[name] else rows

        def once() -> int:
            dt = self._refresh(name)
            committed = {tp: self._version(dt, tp) for tp in offsets}
            fresh = _rows_after(rows, committed)
            txns = [
                Transaction(app_id_for(self.app_id, *tp), offset)
                for tp, offset in sorted(offsets.items())
                if offset > committed[tp]
            ]
            if fresh.num_rows == 0:
                return 0
            write_deltalake(dt, fresh, mode="append", commit_properties=CommitProperties(app_transactions=txns))
            return fresh.num_rows

        return self._with_retries(f"append to {name}", once)

    def upsert_sessions(self, rows: pa.Table, *, offsets: Mapping[TopicPartition, int] | None = None) -> int:
        """MERGE session state rows by session_id; an older state never replaces a newer one.

        With `offsets`, the commit also records them as app transactions, even with no rows (an
        empty append then carries them): a batch is whole in the lake once `sessions` has its
        offsets, so a crash between the appends and this MERGE is replayed from the log.
        """
        rows = rows.cast(SCHEMAS[SESSIONS]) if rows.schema != SCHEMAS[SESSIONS] else rows

        def once() -> int:
            dt = self._refresh(SESSIONS)
            txns = []
            for tp, offset in sorted((offsets or {}).items()):
                if offset > self._version(dt, tp):
                    txns.append(Transaction(app_id_for(self.app_id, *tp), offset))
            if rows.num_rows == 0 and not txns:
                return 0
            if rows.num_rows == 0:  # a MERGE of nothing commits nothing: append nothing instead
                write_deltalake(dt, rows, mode="append", commit_properties=CommitProperties(app_transactions=txns))
                return 0
            (
                dt.merge(
                    rows,
                    predicate="t.session_id = s.session_id",
                    source_alias="s",
                    target_alias="t",
                    commit_properties=CommitProperties(app_transactions=txns or None),
                )
                # Equal offsets still update: time alone (grace, idle timeout) can change a row.
                .when_matched_update_all(predicate="s.last_offset >= t.last_offset")
                .when_not_matched_insert_all()
                .execute()
            )
            return rows.num_rows

        return self._with_retries("merge into sessions", once)

    def _with_retries(self, what: str, once: Callable[[], int]) -> int:
        """Run `once` until it commits. A conflict with another writer's commit (several workers
        on one lake: a MERGE whose files another commit changed) is re-run from a fresh read,
        many times with jitter; a store error is retried `max_attempts` times. Each run re-reads
        the table's app transactions first, so a commit that did land is never written twice."""
        conflicts = errors = 0
        while True:
            try:
                return once()
            except CommitFailedError as exc:
                if not _is_conflict(exc):
                    errors += 1
                    if errors >= self.max_attempts:
                        raise
                    log.warning("%s failed (%s); reloading and re-checking offsets", what, exc)
                    time.sleep(min(0.2 * 2**errors, 3.0))
                    continue
                conflicts += 1
                if conflicts > self.max_conflicts:
                    raise
                log.info("%s lost a race with a concurrent commit (%s); re-reading and retrying",
                         what, str(exc).splitlines()[0])
                time.sleep(random.uniform(0.02, min(0.05 * 2 ** min(conflicts, 6), 2.0)))
            except (DeltaError, OSError) as exc:
                errors += 1
                if errors >= self.max_attempts:
                    raise
                log.warning("%s failed (%s); reloading and re-checking offsets", what, exc)
                time.sleep(min(0.2 * 2**errors, 3.0))


def _is_conflict(exc: Exception) -> bool:
    """A commit another writer's commit got in the way of (not a store or data error)."""
    text = str(exc).lower()
    return "concurrent" in text or "already exists" in text or "conflict" in text


def _rows_after(rows: pa.Table, committed: Mapping[TopicPartition, int]) -> pa.Table:
    """Rows whose (topic, partition) offset is above the committed version."""
    if rows.num_rows == 0 or not committed or all(v < 0 for v in committed.values()):
        return rows
    # The usual case, every row new, costs one grouped pass instead of a mask per partition.
    firsts = rows.group_by(["kafka_topic", "kafka_partition"]).aggregate([("kafka_offset", "min")]).to_pydict()
    if all(
        first > committed.get((str(t), int(p)), -1)
        for t, p, first in zip(firsts["kafka_topic"], firsts["kafka_partition"], firsts["kafka_offset_min"])
    ):
        return rows
    topic = rows.column("kafka_topic")
    partition = rows.column("kafka_partition")
    offset = rows.column("kafka_offset")
    keep = None
    for (t, p), version in committed.items():
        mine = pc.and_(pc.equal(topic, t), pc.equal(partition, p))
        cond = pc.and_(mine, pc.greater(offset, version))
        keep = cond if keep is None else pc.or_(keep, cond)
    # Rows from partitions the caller did not name are kept (no recorded progress for them).
    named = None
    for t, p in committed:
        mine = pc.and_(pc.equal(topic, t), pc.equal(partition, p))
        named = mine if named is None else pc.or_(named, mine)
    keep = pc.or_(keep, pc.invert(named))
    return rows.filter(keep)
