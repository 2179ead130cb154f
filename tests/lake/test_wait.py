"""`lake wait`: blocks until sessions or the whole topic are in the lake, and says why when it gives up."""

from __future__ import annotations

import json
import time

from lake.cli import main
from streams.devtools.broker import create_topics
from streams.worker.offline import OfflineIngest
from tests.conftest import publish

from .conftest import session_events


def test_sessions_counts_ended_sessions_with_all_turns(lake_factory, tmp_path, capsys):
    uri = lake_factory(session_events("a", turns=2) + session_events("b", turns=3, status=None))

    assert main(["wait", "--lake", uri, "--sessions", "1", "--timeout", "5"]) == 0
    assert "1/1 sessions ended with all turns in" in capsys.readouterr().err

    started = time.monotonic()
    assert main(["wait", "--lake", uri, "--sessions", "2", "--timeout", "1", "--quiet"]) == 1
    assert 1 <= time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert err.startswith("error: timed out after 1 s: 1/2 sessions ended with all turns in") and err.count("\n") == 1

    # No lake yet (the worker has not started): waiting, not an error.
    assert main(["wait", "--lake", str(tmp_path / "none"), "--sessions", "1", "--timeout", "0.5", "--quiet"]) == 1
    assert "0/1 sessions ended" in capsys.readouterr().err


def test_until_offset_caught_up_reads_the_log_end_past_what_the_broker_reports(broker, tmp_path, capsys):
    topic = f"wait-{time.monotonic_ns()}"
    create_topics(broker.bootstrap_servers, {topic: 1})
    events = session_events("w1", turns=3)
    # One produce batch: Tansu reports the log end as the batch's start + 1, here 1 instead of 6.
    publish(broker.bootstrap_servers, topic, [(e["session_id"].encode(), json.dumps(e).encode()) for e in events])
    lake = str(tmp_path / "lake")
    args = ["wait", "--lake", lake, "--until-offset-caught-up", "--topic", topic,
            "--bootstrap-servers", broker.bootstrap_servers]

    OfflineIngest(lake, topic=topic).write(events[:4])  # offsets 0..3 of the same partition
    assert main([*args, "--timeout", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"2 of {len(events)} records of {topic} not in {lake} yet (lake p0:3, log p0:{len(events) - 1})" in err

    OfflineIngest(lake, topic=topic).write(events[4:])  # the rest, offsets 4..5
    assert main([*args, "--timeout", "10"]) == 0
    assert f"lake holds all {len(events)} records of {topic} (offsets p0:{len(events) - 1})" in capsys.readouterr().err


def test_a_missing_topic_is_one_line(broker, tmp_path, capsys):
    assert main(["wait", "--lake", str(tmp_path), "--until-offset-caught-up", "--topic", "no-such-topic",
                 "--bootstrap-servers", broker.bootstrap_servers, "--timeout", "5"]) == 2
    assert capsys.readouterr().err == "error: topic 'no-such-topic' does not exist on the broker; check ROLLOUT_TOPIC\n"
