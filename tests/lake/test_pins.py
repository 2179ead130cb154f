"""Snapshots and queries pin every table at one consistent point of the worker's commits."""

from __future__ import annotations

import threading

import pytest

from lake import LakeWriter, connect, current_versions
from lake.pins import consistent_versions, txn_versions
from streams.devtools.synthetic import make_sessions
from streams.worker.offline import OfflineIngest

from .conftest import TOPIC, session_events


def _mismatch(uri: str, versions: dict[str, int]) -> dict[str, int]:
    """What a reader at `versions` sees that a whole batch would not show."""
    with connect(uri, versions=versions) as lake:
        q = lambda sql: lake.query(sql).fetchone()[0]  # noqa: E731
        return {
            # a turn's messages without the turn row (its reward, its valid flag), or the reverse
            "messages_without_turn": q("""SELECT count(*) FROM (SELECT DISTINCT session_id, turn FROM raw_messages)
                                          ANTI JOIN raw_turns USING (session_id, turn)"""),
            "turns_without_messages": q("""SELECT count(*) FROM raw_turns t WHERE num_messages > 0 AND NOT EXISTS
                                           (SELECT 1 FROM raw_messages m WHERE m.session_id = t.session_id
                                            AND m.turn = t.turn)"""),
            # a sessions row that counts turns the turns table does not hold yet, or the reverse
            "sessions_vs_turns": q("""SELECT count(*) FROM raw_sessions s LEFT JOIN
                                      (SELECT session_id, count(*) AS n FROM raw_turns GROUP BY 1) t USING (session_id)
                                      WHERE coalesce(t.n, 0) <> coalesce(s.turns_received, 0)"""),
            "turns_without_session": q("SELECT count(*) FROM raw_turns ANTI JOIN raw_sessions USING (session_id)"),
        }


def test_a_batch_cut_between_its_messages_and_turns_commits_is_not_read(lake_factory, monkeypatch):
    uri = lake_factory(session_events("a", turns=2))
    before = consistent_versions(uri)
    # The worker dies after committing the next batch's messages, before its turns.
    original = LakeWriter.append

    def crash_on_turns(self, name, rows, *, offsets):
        if name == "turns":
            raise OSError("worker killed between the messages and turns commits")
        return original(self, name, rows, offsets=offsets)

    monkeypatch.setattr(LakeWriter, "append", crash_on_turns)
    with pytest.raises(OSError):
        OfflineIngest(uri, topic=TOPIC).write(session_events("b", turns=3))
    monkeypatch.undo()
    latest = current_versions(uri)
    assert latest["messages"] == before["messages"] + 1  # the half batch is in the lake
    assert _mismatch(uri, latest)["messages_without_turn"] == 3  # and a naive reader sees it
    pinned = consistent_versions(uri)
    assert pinned == before
    assert not any(_mismatch(uri, pinned).values())
    with connect(uri) as lake:  # every reader (sql, stats, snapshot) pins this way
        assert lake.versions == before
        assert lake.query("SELECT count(DISTINCT session_id) FROM messages").fetchone()[0] == 1


def test_cuts_while_the_worker_writes_are_always_whole_batches(tmp_path):
    uri = str(tmp_path / "lake")
    sessions = make_sessions(40, 6, seed=3, obs_chars=50)
    events = [e for s in sessions for e in s.events]
    done = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        try:  # the worker's own code path; one batch per call: many commits of every table,
            # and sessions cut across batches
            ingest = OfflineIngest(uri, topic=TOPIC)
            for i in range(0, len(events), 23):
                ingest.write(events[i : i + 23])
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            done.set()

    OfflineIngest(uri, topic=TOPIC).write([])  # create the tables
    thread = threading.Thread(target=worker)
    thread.start()
    cuts = []
    while not done.is_set() or not cuts:
        versions = consistent_versions(uri)
        cuts.append(versions)
        seen = _mismatch(uri, versions)
        assert seen == dict.fromkeys(seen, 0), versions
    thread.join()
    assert not errors
    assert len({tuple(c.values()) for c in cuts}) >= 3, "cuts should land at several points of the ingest"
    final = consistent_versions(uri)
    assert final == current_versions(uri) | {"dead_letters": final["dead_letters"]}
    assert not any(_mismatch(uri, final).values())
    # The anchor: the sessions MERGE carries the batch's offsets, the same as the appends.
    assert txn_versions(str(tmp_path / "lake" / "sessions")) == txn_versions(str(tmp_path / "lake" / "messages"))
