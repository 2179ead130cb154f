"""The `task_stats` view and the snapshot filters on per-task reward statistics."""

from __future__ import annotations

import json
import math

import pytest

from lake import connect
from lake.cli import main

from .conftest import reward_event, session_events

# task -> rewards of its rollouts: t0 zero variance (all solved), t1 mixed, t2 all failed, t3 one rollout
REWARDS = {"t0": [1.0, 1.0, 1.0], "t1": [0.0, 1.0, 2.0, 3.0], "t2": [0.0, 0.0], "t3": [5.0]}


@pytest.fixture
def lake_uri(lake_factory):
    events = []
    for task, rewards in REWARDS.items():
        for i, r in enumerate(rewards):
            events += session_events(f"{task}-s{i}", reward=r, task_id=task)
    # A second objective on t1, and a late reward that overrides a first one.
    events += [reward_event("t1-s0", 1.0, objective="accuracy"), reward_event("t1-s1", 0.0, objective="accuracy")]
    uri = lake_factory(events)
    return lake_factory([reward_event("t2-s1", 4.0, event_id="late")], lake=uri)


def _pass_at_k(n: int, c: int, k: int) -> float | None:
    if n < k:
        return None
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_task_stats_view(lake_uri):
    with connect(lake_uri) as lake:
        rows = lake.query("SELECT * FROM task_stats ORDER BY task_id, objective").fetchall()
        cols = [d[0] for d in lake.query("SELECT * FROM task_stats LIMIT 0").description]
    got = {(r[0], r[1]): dict(zip(cols, r)) for r in rows}
    assert set(got) == {("t0", "reward"), ("t1", "accuracy"), ("t1", "reward"), ("t2", "reward"), ("t3", "reward")}
    rewards = dict(REWARDS, t2=[0.0, 4.0])  # the late reward is the latest truth
    for task, values in rewards.items():
        row = got[(task, "reward")]
        n, c = len(values), sum(v > 0 for v in values)
        mean = sum(values) / n
        assert row["n"] == n and row["min"] == min(values) and row["max"] == max(values)
        assert row["mean"] == pytest.approx(mean)
        assert row["std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / n))
        assert row["successes"] == c and row["success_rate"] == pytest.approx(c / n)
        for k in (1, 5, 10):
            want = _pass_at_k(n, c, k)
            assert (row[f"pass_at_{k}"] is None) if want is None else row[f"pass_at_{k}"] == pytest.approx(want)
    assert got[("t1", "accuracy")]["n"] == 2 and got[("t1", "accuracy")]["mean"] == 0.5
    # pass@k against the closed form on a bigger group
    assert _pass_at_k(4, 3, 1) == pytest.approx(got[("t1", "reward")]["pass_at_1"])


def _snap(uri, out, *flags):
    assert main(["snapshot", "--lake", uri, "--out", str(out), "--no-progress", *flags]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    ids = sorted(json.loads(line)["metadata"]["session_id"] for line in (out / "train.jsonl").read_text().splitlines())
    return ids, manifest["counts"]["dropped"]


def test_task_filters_drop_groups_with_reasons(lake_uri, tmp_path):
    # GRPO: zero-variance groups carry no signal (t0 all equal, t3 a single rollout).
    ids, dropped = _snap(lake_uri, tmp_path / "a", "--min-task-std", "0.01")
    assert ids == ["t1-s0", "t1-s1", "t1-s2", "t1-s3", "t2-s0", "t2-s1"]
    assert dropped == {"min_task_std": 4}
    # Difficulty: hard tasks only (mean <= 1.2), then easy ones (mean >= 2).
    ids, dropped = _snap(lake_uri, tmp_path / "b", "--max-task-mean", "1.2")
    assert ids == ["t0-s0", "t0-s1", "t0-s2"] and dropped == {"max_task_mean": 7}
    ids, _ = _snap(lake_uri, tmp_path / "c", "--min-task-mean", "2")
    assert ids == ["t2-s0", "t2-s1", "t3-s0"]
    # Statistics are over the sessions the other filters keep: t1 without its 0-reward rollout.
    ids, dropped = _snap(lake_uri, tmp_path / "d", "--min-reward", "1", "--min-task-mean", "2")
    assert ids == ["t1-s1", "t1-s2", "t1-s3", "t2-s1", "t3-s0"]
    assert dropped == {"min_reward": 2, "min_task_mean": 3}
    # Another objective: only t1 has `accuracy`; the rest have no group for it.
    ids, dropped = _snap(lake_uri, tmp_path / "e", "--min-task-std", "accuracy=0.1")
    assert ids == ["t1-s0", "t1-s1", "t1-s2", "t1-s3"] and dropped == {"min_task_std": 6}


def test_top_k_per_task(lake_uri, tmp_path):
    ids, dropped = _snap(lake_uri, tmp_path / "k", "--top-k-per-task", "2")
    # best first: reward, then achievements, fewer turns, session_id
    assert ids == ["t0-s0", "t0-s1", "t1-s2", "t1-s3", "t2-s0", "t2-s1", "t3-s0"]
    assert dropped == {"not_top_k_for_task": 3}
    assert main(["snapshot", "--lake", lake_uri, "--out", str(tmp_path / "x"), "--top-k-per-task", "0"]) == 2
