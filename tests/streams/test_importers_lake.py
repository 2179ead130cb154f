"""Imported traces take the same exactly-once path into the lake: importing twice adds nothing."""

from __future__ import annotations

import pyarrow.compute as pc
from deltalake import DeltaTable

from lake.tables import table_uri
from streams.__main__ import main as streams_main
from tests.streams.conftest import lake_counts, publish, wait_for
from tests.streams.test_importers import make_synth_db


def test_synth_sqlite_import_lands_once_even_when_replayed_twice(broker, topic_factory, lake_uri_factory, worker_factory, tmp_path):
    db = make_synth_db(tmp_path / "crafter_eval.db")
    topic, lake = topic_factory(), lake_uri_factory()
    args = ["replay", "sqlite", str(db), "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic, "--no-progress"]
    assert streams_main(args) == 0
    worker = worker_factory(topic, lake)
    want = {"sessions": 2, "turns": 4, "rewards": 1, "dead_letters": 0}
    wait_for(lambda: all(lake_counts(lake)[k] == v for k, v in want.items()), 90, "the import in the lake", [worker])
    messages = lake_counts(lake)["messages"]
    assert streams_main(args) == 0  # the same source again
    # A marker behind each session's records, in its partition: once both markers are dead
    # letters, the worker has read the whole replay.
    publish(broker.bootstrap_servers, topic, [(b"sess-a", b"marker"), (b"sess-b", b"marker")])
    wait_for(lambda: lake_counts(lake)["dead_letters"] == 2, 60, "the replay to be processed", [worker])
    counts = lake_counts(lake)
    assert {k: counts[k] for k in want if k != "dead_letters"} == {k: v for k, v in want.items() if k != "dead_letters"}
    assert counts["messages"] == messages
    rows = {r["session_id"]: r for r in DeltaTable(table_uri(lake, "sessions")).to_pyarrow_table().to_pylist()}
    assert rows["sess-a"]["total_reward"] == 1.0 and rows["sess-a"]["env_name"] == "crafter"
    assert rows["sess-a"]["status"] == "terminated" and rows["sess-a"]["turns_received"] == 2
    turns = DeltaTable(table_uri(lake, "turns")).to_pyarrow_table()
    assert pc.sum(turns["reward"]).as_py() == 1.75
