"""`lake stats`: the overview's numbers on a small lake written by the worker's own code path."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from lake.reader import connect
from lake.stats import lake_overview, print_overview

from .conftest import BASE_TS, judgment_event, reward_event, session_events


@pytest.fixture
def lake(lake_factory) -> str:
    return lake_factory(
        session_events("a", reward=1.0, achievements=["collect_wood"])
        + session_events("b", reward=3.0, achievements=["collect_wood", "place_table"], split="val", model="m2",
                         status="truncated")
        + session_events("c", turns=1, reward=None, status=None, env="math")  # still open, no reward yet
        + session_events("d", reward=2.0)
        + [judgment_event("d", "acceptable"), reward_event("d", 0.5, objective="judge:quality")]
        + [b"{not json"]
    )


def test_overview_counts_every_table_and_distribution(lake):
    with connect(lake) as reader:
        overview = lake_overview(reader)

    assert overview["table_versions"] == {"sessions": 1, "turns": 1, "messages": 1, "rewards": 1, "dead_letters": 1}
    assert (overview["sessions"], overview["turns"], overview["messages"], overview["dead_letters"]) == (4, 7, 28, 1)
    assert overview["sessions_by_status"] == {"terminated": 2, "open": 1, "truncated": 1}
    assert overview["sessions_by_env"] == {"crafter": 3, "math": 1}
    assert overview["sessions_by_split"] == {"train": 3, "val": 1}
    assert overview["sessions_by_model"] == {"gpt-4o-mini": 3, "m2": 1}
    assert overview["sessions_by_policy"] == {"react": 4}
    # total_reward is the objective "reward"; the judge's score is another objective, not a reward.
    assert overview["reward"] == {"count": 3, "min": 1.0, "p25": 1.5, "median": 2.0, "p75": 2.5, "max": 3.0,
                                  "mean": 2.0, "missing": 1}
    assert overview["objectives"] == {"judge:quality": 1, "reward": 3}
    assert [(h["bin"], h["width"], h["count"]) for h in overview["reward_histogram"]] == [
        (1.0, pytest.approx(0.1), 1), (pytest.approx(2.0), pytest.approx(0.1), 1),
        (pytest.approx(2.9), pytest.approx(0.1), 1)]  # 20 bins from min to max; the max in the last
    assert overview["achievements_count"] == {"0": 2, "1": 1, "2": 1}
    assert overview["achievements"] == {"collect_wood": 2, "place_table": 1}
    assert overview["judgments"] == {"(none)": 3, "acceptable": 1}
    assert overview["messages_by_role"] == {"assistant": 7, "system": 7, "tool": 7, "user": 7}
    assert overview["dead_letter_errors"] == {"record is not UTF-8 JSON": 1}


def test_a_late_reward_shows_in_the_next_overview_and_top_limits_the_lists(lake, lake_factory):
    lake_factory([reward_event("a", 5.0, ["collect_diamond"], ts=BASE_TS + timedelta(days=1))], lake=lake)
    with connect(lake) as reader:
        overview = lake_overview(reader, top=1)
    assert overview["table_versions"]["rewards"] == 2
    assert overview["reward"]["max"] == 5.0 and overview["reward"]["count"] == 3
    # The late reward's achievements replace a's: three achievements once each, the first by name kept.
    assert overview["achievements"] == {"collect_diamond": 1}
    assert all(len(overview[f"sessions_by_{by}"]) == 1 for by in ("status", "env", "split", "model", "policy"))
    assert overview["sessions_by_env"] == {"crafter": 3}


def test_print_overview_says_the_totals_in_its_first_line(lake):
    from rich.console import Console

    with connect(lake) as reader:
        overview = lake_overview(reader)
    out = io.StringIO()
    print_overview(overview, console=Console(file=out, width=120))
    first, *rest = out.getvalue().splitlines()
    assert first.startswith("4 sessions, 7 turns, 28 messages, 1 dead letters  (sessions v1, turns v1")
    assert any("record is not UTF-8 JSON" in line for line in rest)
