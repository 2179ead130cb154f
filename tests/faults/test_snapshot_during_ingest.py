"""A snapshot cut while the worker ingests holds exactly what its pinned table versions hold."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from lake.export import build_snapshot, reproduce_snapshot
from lake.spec import SnapshotSpec
from streams.devtools.synthetic import make_sessions, to_records
from tests.conftest import lake_counts, publish, read, wait_for
from tests.faults.conftest import exact, expected

pytestmark = pytest.mark.fault

# A typical filter: sessions that ended (an open session is still being written).
SPEC = {"statuses": ["terminated", "truncated"]}


def test_snapshot_cut_while_ingesting_equals_its_pinned_versions(broker, topic_factory, lake_uri_factory, workers, tmp_path: Path):
    sessions = make_sessions(300, 20, seed=51, obs_chars=200)
    topic, lake = topic_factory(), lake_uri_factory()
    worker = workers(topic, lake, group=f"g-snap-{uuid.uuid4().hex[:6]}")
    chunks = [sessions[i : i + 20] for i in range(0, len(sessions), 20)]
    stop = threading.Event()

    def publisher() -> None:
        for chunk in chunks:  # sessions in order: a session ends after its turns
            if stop.is_set():
                return
            publish(broker.bootstrap_servers, topic, to_records(chunk, seed=51, duplicate_rate=0.05, shuffle=False))
            time.sleep(1.0)

    thread = threading.Thread(target=publisher, daemon=True)
    thread.start()
    try:
        def ended() -> int:
            if lake_counts(lake)["sessions"] == 0:
                return 0
            s = read(lake, "sessions")
            return sum(1 for st in s.column("status").to_pylist() if st in ("terminated", "truncated"))

        wait_for(lambda: ended() >= 40, 120, "some sessions ended in the lake", [worker])
        mid = build_snapshot(lake, SnapshotSpec.from_dict(SPEC), tmp_path / "mid")
        # What the cut pinned, not what the lake holds once it is written (the worker may be done).
        turns_at_cut = read(lake, "turns", version=mid["table_versions"]["turns"]).num_rows
        assert turns_at_cut < sum(s.num_turns for s in sessions), "the cut should land mid-ingestion"
        thread.join(300)
    finally:
        stop.set()
    want = expected(sessions)
    wait_for(lambda: lake_counts(lake) == want, 180, "every event in the lake", [worker])
    exact(lake, want)

    # Later, with more commits on every table, the manifest's versions give the same bytes.
    again = reproduce_snapshot(tmp_path / "mid" / "manifest.json", tmp_path / "again")
    assert again["table_versions"] == mid["table_versions"]
    for name in ("train.jsonl", "val.jsonl", "stats.json"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "mid" / name).read_bytes(), name

    # What the cut holds is what those versions hold: its sessions are the ended ones at the pinned
    # `sessions` version, each whole (every turn), and each line equals the one cut at the end.
    pinned = read(lake, "sessions", version=mid["table_versions"]["sessions"]).to_pylist()
    # Sessions with an invalid turn are dropped by default (no --salvage); the data says which.
    invalid = {s.session_id for s in sessions if any(e["type"] == "turn" and not e["valid"] for e in s.events)}
    ended_then = {r["session_id"] for r in pinned if r["status"] in ("terminated", "truncated")} - invalid
    mid_lines = (tmp_path / "mid" / "train.jsonl").read_text().splitlines()
    mid_ids = [json.loads(line)["metadata"]["session_id"] for line in mid_lines]
    assert set(mid_ids) == ended_then and len(mid_ids) == len(ended_then)
    for line in mid_lines:
        msgs = json.loads(line)["messages"]
        assert sum(m["role"] == "assistant" for m in msgs) == 20
    final = build_snapshot(lake, SnapshotSpec.from_dict(SPEC), tmp_path / "final")
    final_lines = set((tmp_path / "final" / "train.jsonl").read_text().splitlines())
    assert set(mid_lines) <= final_lines and len(final_lines) == len(sessions) - len(invalid) > len(mid_lines)
    assert final["table_versions"]["messages"] > mid["table_versions"]["messages"]
