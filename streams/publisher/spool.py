"""A local write-ahead spool: events are appended before sending and acknowledged after delivery.

The file is append-only JSONL: `{"op":"event",...}` lines carry the record, `{"op":"ack","id":...}`
lines mark delivery. Whatever has no ack when a publisher opens the spool is sent again; the
worker drops the duplicates by event_id. One publisher (process) holds a spool at a time, by an
advisory lock on `<spool>.lock` (a file that is never replaced).

Durability: events are fsynced before they are sent (acks are not: a lost ack only sends an event
again). Compaction writes the pending events to `<spool>.compact`, fsyncs it, renames it over the
spool and fsyncs the folder, so a crash at any moment leaves either the old spool or the new one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from streams.publisher.exceptions import SpoolError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one process per spool by convention
    fcntl = None  # type: ignore[assignment]

__all__ = ["Spool", "SpooledRecord"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    """One Kafka record as the publisher sends it."""

    event_id: str
    topic: str
    key: bytes
    value: bytes


class Spool:
    """Write-ahead log of unconfirmed events at `path`; open() locks it and returns what is pending."""

    # A long-lived publisher rewrites the file once everything in it is confirmed and it got this big.
    COMPACT_BYTES = 16 * 1024 * 1024

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._compact_path = self.path.with_name(self.path.name + ".compact")
        self._file: IO[str] | None = None
        self._lock: IO[str] | None = None
        self._pending: dict[str, SpooledRecord] = {}
        self._written = 0

    @property
    def pending(self) -> list[SpooledRecord]:
        return list(self._pending.values())

    def open(self) -> list[SpooledRecord]:
        if self._file is not None:
            return self.pending
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self._lock_path, "a", encoding="utf-8")
        except OSError as exc:
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc
        if fcntl is not None:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                lock.close()
                raise SpoolError(
                    f"spool {self.path} is held by another publisher; give each process its own spool_path"
                ) from exc
        try:
            # A compaction that died before its rename left only a copy: the spool itself is whole.
            self._compact_path.unlink(missing_ok=True)
            file = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            lock.close()
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc
        self._lock, self._file = lock, file
        file.seek(0)
        self._pending = self._read(file)
        file.seek(0, os.SEEK_END)
        if self._pending:
            log.info("spool %s holds %d undelivered events", self.path, len(self._pending))
        return self.pending

    def _read(self, file: IO[str]) -> dict[str, SpooledRecord]:
        pending: dict[str, SpooledRecord] = {}
        for lineno, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if entry["op"] == "ack":
                    pending.pop(entry["id"], None)
                else:
                    pending[entry["id"]] = SpooledRecord(
                        event_id=entry["id"],
                        topic=entry["topic"],
                        key=entry["key"].encode(),
                        value=entry["value"].encode(),
                    )
            except (ValueError, KeyError, TypeError, AttributeError):
                # A crash mid-write leaves a torn last line; the event it held was never acked
                # by Kafka either, and its caller saw the failure.
                log.warning("spool %s line %d is unreadable; skipped", self.path, lineno)
        return pending

    def _write(self, lines: list[str], *, sync: bool) -> None:
        if self._file is None:
            raise SpoolError(f"spool {self.path} is not open")
        text = "".join(lines)
        try:
            self._file.write(text)
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from exc
        self._written += len(text)

    @staticmethod
    def _event_lines(records: list[SpooledRecord]) -> list[str]:
        return [
            json.dumps({"op": "event", "id": r.event_id, "topic": r.topic, "key": r.key.decode(), "value": r.value.decode()},
                       separators=(",", ":")) + "\n"
            for r in records
        ]

    def append(self, records: list[SpooledRecord]) -> None:
        """Record events before they are sent; on disk (fsynced) when this returns."""
        for rec in records:
            self._pending[rec.event_id] = rec
        self._write(self._event_lines(records), sync=True)

    def ack(self, event_ids: list[str]) -> None:
        lines = []
        for event_id in event_ids:
            if self._pending.pop(event_id, None) is not None:
                lines.append(json.dumps({"op": "ack", "id": event_id}, separators=(",", ":")) + "\n")
        if lines:
            self._write(lines, sync=False)
        if not self._pending and self._written > self.COMPACT_BYTES:
            self.compact()

    def compact(self) -> None:
        """Rewrite the spool with only the pending events, atomically (write a copy, fsync, rename)."""
        if self._file is None:
            return
        pending = self.pending
        try:
            with open(self._compact_path, "w", encoding="utf-8") as copy:
                copy.write("".join(self._event_lines(pending)))
                copy.flush()
                os.fsync(copy.fileno())
            os.replace(self._compact_path, self.path)
            _fsync_dir(self.path.parent)
            old, self._file = self._file, open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            raise SpoolError(f"cannot compact spool {self.path}: {exc}") from exc
        old.close()
        self._written = self._file.seek(0, os.SEEK_END)

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.close()  # closing releases the flock


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
