"""`lake.maintain` on a real lake: compaction, checkpoints and vacuum keep every row and the worker's
exactly-once offsets (the Delta app transactions), so a replay after maintenance still adds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lake import LakeWriter, maintain
from lake.exceptions import LakeNotFoundError
from lake.tables import TABLES, table_uri

from .conftest import TOPIC, session_events

TP = (TOPIC, 0)


def _rows(uri: str) -> dict[str, list[str]]:
    """Every table's rows, order-free, as JSON text."""
    out = {}
    for name in TABLES:
        rows = DeltaTable(table_uri(uri, name)).to_pyarrow_table().to_pylist()
        out[name] = sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
    return out


def _offsets(uri: str) -> dict[str, int]:
    writer = LakeWriter(uri)
    return {name: writer.committed_offsets(name, [TP])[TP] for name in TABLES if name != "dead_letters"}


def _parquet_files(uri: str, name: str) -> set[str]:
    return {p.name for p in Path(table_uri(uri, name)).glob("*.parquet")}


@pytest.fixture
def lake(lake_factory) -> str:
    """Five batches from the worker's code path: five small files per appended table."""
    uri = lake_factory(session_events("a", turns=3))
    for i in range(4):
        lake_factory(session_events(f"s{i}", turns=2, reward=float(i)), lake=uri)
    return uri


def test_forced_vacuum_keeps_rows_and_offsets_and_a_replay_still_adds_nothing(lake):
    rows, offsets = _rows(lake), _offsets(lake)
    assert offsets["messages"] > 0 and len(_parquet_files(lake, "messages")) == 5

    report = {r.table: r for r in maintain(lake, retention_hours=0, allow_short_retention=True)}

    messages = report["messages"]
    assert (messages.files_before, messages.compacted_removed, messages.compacted_added) == (5, 5, 1)
    assert messages.vacuumed_files == 5  # the compacted-away files: nothing may read them now
    assert messages.files_after == 1 and _parquet_files(lake, "messages") == {
        Path(u).name for u in DeltaTable(table_uri(lake, "messages")).file_uris()}
    assert not any(r.errors for r in report.values())
    assert _rows(lake) == rows
    assert _offsets(lake) == offsets
    # The worker replays its last batch after a crash: the offsets say it is in, nothing is written twice.
    events = session_events("new", turns=2, reward=3.0)
    from streams.worker.offline import OfflineIngest

    OfflineIngest(lake, topic=TOPIC).write(events)  # a new session after maintenance lands as usual
    assert len(_rows(lake)["turns"]) == len(rows["turns"]) + 2
    turns = DeltaTable(table_uri(lake, "turns")).to_pyarrow_table().slice(0, 2)
    assert LakeWriter(lake).append("turns", turns, offsets={TP: offsets["turns"]}) == 0


def test_the_checkpoint_alone_holds_the_offsets(lake):
    offsets = _offsets(lake)
    report = {r.table: r for r in maintain(lake, vacuum=False)}
    log = Path(table_uri(lake, "turns")) / "_delta_log"
    checkpoint = report["turns"].checkpoint_version
    assert (log / f"{checkpoint:020d}.checkpoint.parquet").is_file()
    # Log cleanup (after the log retention) removes the commits a checkpoint covers.
    for commit in log.glob("*.json"):
        if int(commit.stem) <= checkpoint:
            commit.unlink()
    assert _offsets(lake)["turns"] == offsets["turns"]
    assert DeltaTable(table_uri(lake, "turns")).count() == 3 + 4 * 2


def test_dry_run_changes_nothing(lake):
    rows = _rows(lake)
    maintain(lake, compact=True, checkpoint=False, vacuum=False)  # leaves 5 unreferenced files per table
    files = _parquet_files(lake, "messages")
    versions = {name: DeltaTable(table_uri(lake, name)).version() for name in TABLES}

    report = {r.table: r for r in maintain(lake, retention_hours=0, allow_short_retention=True, dry_run=True)}

    assert report["messages"].vacuumed_files == 5  # what a real run would delete...
    assert _parquet_files(lake, "messages") == files  # ...still on disk
    assert {r.table: r.version_after for r in report.values()} == versions
    assert report["messages"].checkpoint_version is None and report["messages"].compacted_removed == 0
    assert _rows(lake) == rows


def test_bad_arguments_and_a_missing_lake_are_one_line_errors(lake, tmp_path):
    with pytest.raises(ValueError, match=r"unknown table\(s\) \['session'\]; the lake's tables are sessions, turns"):
        maintain(lake, tables=["session"])
    with pytest.raises(ValueError, match="--retention-hours -1 must be >= 0"):
        maintain(lake, retention_hours=-1)
    with pytest.raises(LakeNotFoundError, match="no Delta table `sessions` at .*; is LAKE_URI right?"):
        maintain(str(tmp_path / "nowhere"))
    only = maintain(lake, tables=["turns"], vacuum=False)
    assert [r.table for r in only] == ["turns"]
