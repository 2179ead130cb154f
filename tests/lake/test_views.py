"""The views show the latest truth at pinned table versions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lake import connect, current_versions
from lake.exceptions import LakeNotFoundError, TableVersionError

from .conftest import BASE_TS, judgment_event, reward_event, session_events


def _one(lake, sql):
    return lake.query(sql).fetchall()


def test_late_reward_and_judgment_show_up_on_their_session(lake_factory):
    uri = lake_factory(session_events("s1", reward=1.0, achievements=["collect_wood"]))
    # After finalization: a newer reward, an older one arriving later, a judgment, another objective.
    lake_factory([
        reward_event("s1", 3.0, ["collect_wood", "place_table", "wake_up"], ts=BASE_TS + timedelta(hours=2)),
        reward_event("s1", 0.0, [], ts=BASE_TS + timedelta(hours=1), event_id="stale"),
        reward_event("s1", 0.75, [], objective="accuracy", ts=BASE_TS + timedelta(hours=1)),
        judgment_event("s1", "unacceptable", ts=BASE_TS + timedelta(hours=1)),
        judgment_event("s1", "acceptable", ts=BASE_TS + timedelta(hours=3)),
    ], lake=uri)
    with connect(uri) as lake:
        assert _one(lake, "SELECT total_reward, achievements, achievements_count, judgment, rewards "
                          "FROM sessions") == [
            (3.0, ["collect_wood", "place_table", "wake_up"], 3, "acceptable", {"accuracy": 0.75, "reward": 3.0})
        ]
        # The worker re-upserts the session's physical row with the latest reward too.
        assert _one(lake, "SELECT total_reward, judgment FROM raw_sessions") == [(3.0, "acceptable")]
        assert _one(lake, "SELECT objective, total_reward FROM latest_rewards ORDER BY 1") == [
            ("accuracy", 0.75), ("reward", 3.0)]
        assert _one(lake, "SELECT judgment FROM latest_judgments") == [("acceptable",)]
        assert _one(lake, "SELECT count(*) FROM rewards") == [(6,)]


def test_reward_before_session_start_is_resolved(lake_factory):
    uri = lake_factory([reward_event("early", 2.0, ["a"])])
    lake_factory(session_events("early", reward=None), lake=uri)
    with connect(uri) as lake:
        assert _one(lake, "SELECT session_id, total_reward, achievements_count FROM sessions") == [("early", 2.0, 1)]


def test_messages_view_numbers_messages_across_turns(lake_factory):
    uri = lake_factory(session_events("s1", turns=2))
    with connect(uri) as lake:
        rows = _one(lake, "SELECT turn, idx_in_turn, idx, role FROM messages ORDER BY idx")
    assert rows == [
        (0, 0, 0, "system"), (0, 1, 1, "user"), (0, 2, 2, "assistant"), (0, 3, 3, "tool"),
        (1, 0, 4, "system"), (1, 1, 5, "user"), (1, 2, 6, "assistant"), (1, 3, 7, "tool"),
    ]


def test_pinned_versions_ignore_later_commits(lake_factory):
    uri = lake_factory(session_events("s1", reward=1.0))
    before = current_versions(uri)
    lake_factory(session_events("s2") + [reward_event("s1", 9.0, ts=BASE_TS + timedelta(days=1))], lake=uri)
    with connect(uri, versions=before) as lake:
        assert _one(lake, "SELECT session_id, total_reward FROM sessions") == [("s1", 1.0)]
        assert _one(lake, "SELECT count(*) FROM messages") == [(8,)]
    with connect(uri) as lake:
        assert _one(lake, "SELECT session_id, total_reward FROM sessions ORDER BY 1") == [("s1", 9.0), ("s2", 1.0)]


def test_arrow_reader_sees_the_same_truth(lake_factory):
    uri = lake_factory(session_events("s1", reward=1.0))
    lake_factory([reward_event("s1", 4.0, ts=BASE_TS + timedelta(days=1))], lake=uri)
    with connect(uri, reader="arrow") as lake:
        assert _one(lake, "SELECT total_reward FROM sessions") == [(4.0,)]
        assert _one(lake, "SELECT max(idx) FROM messages") == [(7,)]


def test_dead_letters_view_decodes_raw_text(lake_factory):
    uri = lake_factory([b'{"type": "turn"', "not json"])
    with connect(uri) as lake:
        rows = _one(lake, "SELECT raw_text, error LIKE 'record is not%' FROM dead_letters ORDER BY kafka_offset")
    assert rows == [('{"type": "turn"', True), ("not json", True)]


def test_missing_lake_and_unreadable_version_are_clear_errors(lake_factory, tmp_path):
    with pytest.raises(LakeNotFoundError, match="no Delta table `sessions`"):
        connect(str(tmp_path / "nowhere"))
    uri = lake_factory(session_events("s1"))
    versions = {**current_versions(uri), "messages": 99}
    with pytest.raises(TableVersionError, match="messages|99"):
        connect(uri, versions=versions)
