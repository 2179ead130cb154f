"""Consistent table versions: one point of the worker's commits across all tables.

The worker commits a batch as one Delta commit per table, in the order messages, turns,
rewards, dead_letters, then the sessions MERGE; every commit carries an app transaction per
Kafka partition (`rollout-lake[:epoch]:<topic>:<partition>`, version = the batch's last offset).
Reading each table's latest version one at a time can catch a batch half-way (its messages
without its turns). So: read the anchor (`sessions`, committed last) first; its app
transactions say which offsets are in; every other table is pinned to its latest version whose
app transactions are all at or below those offsets. A table that had no rows in a batch makes
no commit, so "at or below" (not "equal") is the rule. `dead_letters` joins nothing and stays
at its latest version.

Local lakes read the Delta log directly (commit JSON files and parquet checkpoints): no
deltalake import, a few small file reads. Object stores read the same files through delta-rs's
file system with the lake's storage options (a few small GETs per table).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from lake.exceptions import LakeNotFoundError
from lake.tables import DEAD_LETTERS, MESSAGES, REWARDS, SESSIONS, TABLES, TURNS, table_uri

__all__ = ["consistent_versions", "txn_versions"]

_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.\d+\.\d+)?\.parquet$")
# Tables whose rows belong to a batch and must match the anchor's offsets.
_FOLLOWERS = (MESSAGES, TURNS, REWARDS)


class _Log:
    """The `_delta_log` of one table: latest version and app transactions per version.

    A local table's log is read with plain file reads; an object store's through delta-rs's
    own file system (`fs`, rooted at the table), with the lake's storage options.
    """

    def __init__(self, table_dir: str, fs: Any = None) -> None:
        self.fs = fs
        self.dir = os.path.join(table_dir, "_delta_log") if fs is None else "_delta_log"
        names = self._list(table_dir)
        self.commits: set[int] = set()
        self.checkpoints: dict[int, list[str]] = {}
        for name in names:
            if m := _COMMIT.match(name):
                self.commits.add(int(m.group(1)))
            elif m := _CHECKPOINT.match(name):
                self.checkpoints.setdefault(int(m.group(1)), []).append(name)
        if not self.commits and not self.checkpoints:
            raise LakeNotFoundError(f"Delta table at {_public(table_dir)} has no commits")

    def _list(self, table_dir: str) -> list[str]:
        if self.fs is None:
            if not os.path.isdir(self.dir):
                raise LakeNotFoundError(f"no Delta table at {table_dir}; is LAKE_URI (or --lake) right?")
            return os.listdir(self.dir)
        from pyarrow.fs import FileSelector

        try:
            infos = self.fs.get_file_info(FileSelector(self.dir, allow_not_found=True))
        except OSError as exc:  # unreachable endpoint, missing bucket, refused credentials
            from lake.storage import unreachable

            raise unreachable(table_dir, exc) from None
        if not infos:
            raise LakeNotFoundError(
                f"no Delta table at {_public(table_dir)}: is LAKE_URI (or --lake) right? The worker "
                "creates the tables when it starts"
            )
        return [info.base_name for info in infos]

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name) if self.fs is None else f"{self.dir}/{name}"

    def latest(self) -> int:
        return max(self.commits | set(self.checkpoints))

    def _commit_txns(self, version: int) -> dict[str, int]:
        out: dict[str, int] = {}
        path = self._path(f"{version:020d}.json")
        with (open(path, "rb") if self.fs is None else self.fs.open_input_stream(path)) as fh:
            for line in fh.read().splitlines():
                if line.startswith(b'{"txn"'):
                    txn = json.loads(line)["txn"]
                    out[txn["appId"]] = int(txn["version"])
        return out

    def _checkpoint_txns(self, version: int) -> dict[str, int]:
        import pyarrow.parquet as pq

        out: dict[str, int] = {}
        for name in sorted(self.checkpoints[version]):
            col = pq.read_table(self._path(name), columns=["txn"], filesystem=self.fs).column("txn")
            for txn in col.to_pylist():
                if txn:
                    out[txn["appId"]] = int(txn["version"])
        return out

    def states(self, hi: int, lo: int = 0) -> dict[int, dict[str, int]]:
        """App transactions at every version in [start, hi], start <= lo where the log allows."""
        start = max((c for c in self.checkpoints if c <= lo), default=None)
        state = self._checkpoint_txns(start) if start is not None else {}
        first = start + 1 if start is not None else 0
        out = {start: dict(state)} if start is not None else {}
        for v in range(first, hi + 1):
            if v not in self.commits:
                raise LakeNotFoundError(f"Delta log {self.dir} lacks commit {v} (cleaned up?)")
            state.update(self._commit_txns(v))
            out[v] = dict(state)
        return out


def _public(uri: str) -> str:
    from lake.storage import public_uri

    return public_uri(uri)


def txn_versions(table_dir: str, version: int | None = None) -> dict[str, int]:
    """The app transactions (app id -> version) of a local Delta table at `version` (default latest)."""
    log = _Log(table_dir)
    v = log.latest() if version is None else version
    return log.states(v, v)[v]


def _pin(log: _Log, latest: int, limits: Mapping[str, int]) -> int:
    """The latest version <= `latest` whose app transactions are all <= `limits` (-1 if absent)."""
    lo = latest
    while True:
        states = log.states(latest, lo)
        for v in sorted(states, reverse=True):
            if all(x <= limits.get(app, -1) for app, x in states[v].items()):
                return v
        first = min(states)
        if first == 0:
            # Even the first commit holds offsets the anchor lacks: the table's creation is the pin.
            return 0
        lo = first - 1


def consistent_versions(
    lake_uri: str, *, storage_options: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Table versions that show whole worker batches only: every table at one point of the log."""
    from lake.reader import _local_path, is_local

    if is_local(str(lake_uri)):
        dirs = {t: _local_path(table_uri(str(lake_uri), t)) for t in TABLES}
        for t, d in dirs.items():
            if not os.path.isdir(os.path.join(d, "_delta_log")):
                raise LakeNotFoundError(
                    f"no Delta table `{t}` at {d}: is LAKE_URI (or --lake) right? The worker "
                    "creates the tables when it starts"
                )

        def open_log(t: str) -> _Log:
            return _Log(dirs[t])
    else:
        from deltalake.fs import DeltaStorageHandler
        from pyarrow.fs import PyFileSystem

        from lake.storage import resolve_storage_options

        opts = resolve_storage_options(str(lake_uri), storage_options)

        def open_log(t: str) -> _Log:
            uri = table_uri(str(lake_uri), t)
            return _Log(uri, PyFileSystem(DeltaStorageHandler(uri, opts)))
    # The anchor is read before anything else: whatever it holds, the others hold too.
    anchor_log = open_log(SESSIONS)
    versions = {SESSIONS: anchor_log.latest()}
    limits = anchor_log.states(versions[SESSIONS], versions[SESSIONS])[versions[SESSIONS]]
    logs = {t: open_log(t) for t in (*_FOLLOWERS, DEAD_LETTERS)}
    latest = {t: log.latest() for t, log in logs.items()}
    versions[DEAD_LETTERS] = latest[DEAD_LETTERS]
    followers: tuple[str, ...] = _FOLLOWERS
    if not limits:
        # A lake whose sessions MERGE records no offsets (older workers): anchor on turns, so
        # messages and rewards at least match the turns they belong with.
        versions[TURNS] = latest[TURNS]
        limits = logs[TURNS].states(latest[TURNS], latest[TURNS])[latest[TURNS]]
        followers = (MESSAGES, REWARDS)
    for t in followers:
        versions[t] = _pin(logs[t], latest[t], limits)
    return {t: versions[t] for t in TABLES}

