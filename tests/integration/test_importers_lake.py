"""Imported traces take the same exactly-once path into the lake: importing twice adds nothing."""

from __future__ import annotations

import pyarrow.compute as pc
from deltalake import DeltaTable

from lake.tables import table_uri
from streams.__main__ import main as streams_main
from tests.conftest import bad_synth_sessions, lake_counts, make_synth_db, publish, wait_for


def test_synth_sqlite_import_lands_once_even_when_replayed_twice(broker, topic_factory, lake_uri_factory, worker_factory, tmp_path):
    db = make_synth_db(tmp_path / "crafter_eval.db", filter_keys=True)
    bad_synth_sessions(db)  # skipped whole, with reasons; the rest is imported
    topic, lake = topic_factory(), lake_uri_factory()
    args = ["replay", "sqlite", str(db), "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic, "--no-progress"]
    assert streams_main(args) == 1
    worker = worker_factory(topic, lake)
    want = {"sessions": 3, "turns": 5, "rewards": 3, "dead_letters": 0}
    wait_for(lambda: all(lake_counts(lake)[k] == v for k, v in want.items()), 90, "the import in the lake", [worker])
    messages = lake_counts(lake)["messages"]
    assert streams_main(args) == 1  # the same source again
    # A marker behind each session's records, in its partition: once the markers are dead
    # letters, the worker has read the whole replay.
    publish(broker.bootstrap_servers, topic, [(b"sess-a", b"marker"), (b"sess-b", b"marker"), (b"sess-j", b"marker")])
    wait_for(lambda: lake_counts(lake)["dead_letters"] == 3, 60, "the replay to be processed", [worker])
    counts = lake_counts(lake)
    assert {k: counts[k] for k in want if k != "dead_letters"} == {k: v for k, v in want.items() if k != "dead_letters"}
    assert counts["messages"] == messages
    rows = {r["session_id"]: r for r in DeltaTable(table_uri(lake, "sessions")).to_pyarrow_table().to_pylist()}
    assert rows["sess-a"]["total_reward"] == 1.0 and rows["sess-a"]["env_name"] == "crafter"
    assert rows["sess-a"]["status"] == "terminated" and rows["sess-a"]["turns_received"] == 2
    turns = DeltaTable(table_uri(lake, "turns")).to_pyarrow_table()
    assert pc.sum(turns["reward"]).as_py() == 1.75

    # synth-ai's filter keys land where `lake snapshot --splits/--task-ids/--models/--min-reward` look.
    from lake.reader import connect

    with connect(lake) as view:
        got = view.query("SELECT session_id, split, task_id, model, rewards FROM sessions ORDER BY 1").fetchall()
    assert [(sid, split, task, model) for sid, split, task, model, _ in got] == [
        ("sess-a", "train", "seed-3", "gpt-4o-mini"), ("sess-b", None, None, None), ("sess-j", "val", "17", "gpt-4o")]
    assert dict(got[2][4]) == {"judge:quality": 0.8, "judge:style": 0.5}
