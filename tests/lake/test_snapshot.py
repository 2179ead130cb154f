"""`lake snapshot`: every filter and option changes the JSONL exactly as documented."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from lake.cli import main
from lake.selection import val_key_fraction

from .conftest import BASE_TS, judgment_event, reward_event, session_events

TOOLS = [{"function": {"description": "Act in the world", "name": "act", "parameters": {
    "properties": {"actions": {"items": {"type": "string"}, "type": "array"}}, "type": "object"}},
    "type": "function"}]
SYSTEM = {"role": "system", "content": "You are playing Crafter."}


def user(sid, t):
    return {"role": "user", "content": f"{sid} observation {t}"}


def call(t):
    return {"role": "assistant", "content": "", "tool_calls": [{"id": f"c{t}", "type": "function", "function": {
        "name": "act", "arguments": json.dumps({"actions": [f"move_{t}"]})}}]}


def tool(t):
    return {"role": "tool", "content": f"ok {t}", "tool_call_id": f"c{t}"}


def read(out: Path, name: str = "train.jsonl") -> list[dict]:
    return [json.loads(line) for line in (out / name).read_text().splitlines()]


def snap(uri: str, out: Path, *flags: str) -> dict:
    assert main(["snapshot", "--lake", uri, "--out", str(out), "--no-progress", *flags]) == 0
    return json.loads((out / "manifest.json").read_text())


def sids(rows: list[dict]) -> list[str]:
    return [r["metadata"]["session_id"] for r in rows]


def test_session_granularity_line_is_exact(lake_factory, tmp_path):
    uri = lake_factory(session_events("s1", turns=2, reward=3.0, achievements=["a", "b"], seed=7))
    manifest = snap(uri, tmp_path / "out")
    assert read(tmp_path / "out") == [{
        # One system prompt although every turn repeats it; the trailing tool result is cut.
        "messages": [SYSTEM, user("s1", 0), call(0), tool(0), user("s1", 1), call(1)],
        "tools": TOOLS,
        "metadata": {"session_id": "s1", "env_name": "crafter", "policy_name": "react", "model": "gpt-4o-mini",
                     "task_id": "task-s1", "split": "train", "seed": 7, "run_id": "run-1", "total_reward": 3.0,
                     "achievements_count": 2, "status": "terminated", "judgment": None, "salvaged": False},
    }]
    assert (tmp_path / "out" / "val.jsonl").read_text() == ""
    assert set(manifest) == {"format_version", "created_at", "code_version", "lake_uri", "table_versions",
                             "spec", "counts", "files"}
    assert manifest["format_version"] == 1
    assert manifest["table_versions"] == {"sessions": 1, "turns": 1, "messages": 1, "rewards": 1, "dead_letters": 0}
    assert manifest["counts"]["examples"] == {"train": 1, "val": 0}
    assert manifest["files"]["train.jsonl"]["rows"] == 1
    import hashlib
    for name in ("train.jsonl", "val.jsonl", "stats.json"):
        data = (tmp_path / "out" / name).read_bytes()
        assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                                           "rows": manifest["files"][name]["rows"]}
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["messages"] == {"total": 6, "by_role": {"assistant": 2, "system": 1, "tool": 1, "user": 2}}


@pytest.fixture
def varied(lake_factory):
    """Six sessions that differ in one attribute each from `base`."""
    t = BASE_TS
    events = (
        session_events("base", reward=2.0, achievements=["collect_wood", "place_table"], task_id="t1")
        + session_events("low", reward=0.0, task_id="t2", started=t + timedelta(minutes=1))
        + session_events("test", reward=5.0, achievements=["collect_wood"], split="test", model="gpt-4o",
                         env="connections", policy="cot", task_id="t3", started=t + timedelta(minutes=2))
        + session_events("trunc", turns=4, reward=2.0, status="truncated", task_id="t4",
                         started=t + timedelta(days=1))
        + session_events("judged", reward=1.0, task_id="t5", started=t + timedelta(minutes=3))
        + [judgment_event("judged", "acceptable"), judgment_event("base", "unacceptable"),
           reward_event("low", 0.9, objective="accuracy")]
    )
    return lake_factory(events)


@pytest.mark.parametrize("flags, kept, reason", [
    ([], ["base", "low", "test", "judged", "trunc"], None),
    (["--min-reward", "2"], ["base", "test", "trunc"], {"min_reward": 2}),
    (["--max-reward", "1"], ["low", "judged"], {"max_reward": 3}),
    (["--min-reward", "accuracy=0.5"], ["low"], {"min_reward": 4}),
    (["--min-achievements", "2"], ["base"], {"min_achievements": 4}),
    (["--required-achievements", "collect_wood"], ["base", "test"], {"required_achievements": 3}),
    (["--max-turns", "3"], ["base", "low", "test", "judged"], {"max_turns": 1}),
    (["--require-termination"], ["base", "low", "test", "judged"], {"require_termination": 1}),
    (["--statuses", "truncated"], ["trunc"], {"statuses": 4}),
    (["--splits", "test"], ["test"], {"splits": 4}),
    (["--splits", "train,test"], ["base", "low", "test", "judged", "trunc"], None),
    (["--task-ids", "t1,t4"], ["base", "trunc"], {"task_ids": 3}),
    (["--models", "gpt-4o"], ["test"], {"models": 4}),
    (["--envs", "connections"], ["test"], {"envs": 4}),
    (["--policy-names", "cot"], ["test"], {"policy_names": 4}),
    (["--min-created-at", "2026-11-01T10:01:00Z"], ["low", "test", "judged", "trunc"], {"min_created_at": 1}),
    (["--max-created-at", "2026-11-01T10:02:00+00:00"], ["base", "low", "test"], {"max_created_at": 2}),
    (["--judgment", "acceptable"], ["judged"], {"judgment": 4}),
    (["--where", "env_name = 'crafter' AND total_reward > 0.5 AND status <> 'truncated'"], ["base", "judged"],
     {"where": 3}),
    (["--limit", "2"], ["base", "low"], {"limit": 3}),
])
def test_each_filter(varied, tmp_path, flags, kept, reason):
    manifest = snap(varied, tmp_path / "out", *flags)
    rows = read(tmp_path / "out")
    # Snapshot order: started_at, then session_id.
    assert sids(rows) == kept
    assert manifest["counts"]["dropped"] == (reason or {})
    assert manifest["counts"]["sessions_total"] == 5


def test_toml_config_with_synth_ai_keys(varied, tmp_path):
    cfg = tmp_path / "filter.toml"
    cfg.write_text('[filter]\nmin_official_score = 1.0\nsplits = ["train"]\nmodels = ["gpt-4o-mini"]\n'
                   'limit = 2\noutput = "%s"\n' % (tmp_path / "from-toml"))
    assert main(["snapshot", "--lake", varied, "--config", str(cfg), "--no-progress"]) == 0
    manifest = json.loads((tmp_path / "from-toml" / "manifest.json").read_text())
    # synth-ai's shape: one example per assistant turn, no system prompt (tests/lake/test_snapshot_usability.py).
    assert sids(read(tmp_path / "from-toml")) == ["base", "base", "judged", "judged"]
    assert manifest["spec"]["min_reward"] == {"reward": 1.0} and manifest["spec"]["limit"] == 2
    assert (manifest["spec"]["granularity"], manifest["spec"]["include_system"]) == ("turn", False)
    # A flag overrides the file's key; our own keys work in TOML too.
    snap(varied, tmp_path / "flags", "--config", str(cfg), "--limit", "1", "--granularity", "session")
    assert sids(read(tmp_path / "flags")) == ["base"]
    cfg.write_text("min_reward = {accuracy = 0.5}\nbest_per_task = true\ngranularity = 'turn'\n")
    snap(varied, tmp_path / "ours", "--config", str(cfg))
    assert [(r["metadata"]["session_id"], r["metadata"]["turn"]) for r in read(tmp_path / "ours")] == [
        ("low", 0), ("low", 1)]


def test_bad_config_and_flags_are_one_line_errors(varied, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[filter]\nmin_rewrad = 1\n')
    assert main(["snapshot", "--lake", varied, "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "unknown filter key `min_rewrad`" in capsys.readouterr().err
    assert main(["snapshot", "--lake", varied, "--min-reward", "lots", "--out", str(tmp_path / "o")]) == 2
    assert "is not a number" in capsys.readouterr().err
    assert main(["snapshot", "--lake", varied, "--where", "1=1; DROP VIEW sessions", "--dry-run"]) == 2
    assert "not one SQL predicate" in capsys.readouterr().err
    assert main(["snapshot", "--lake", varied, "--where", "nope > 1", "--dry-run"]) == 2
    assert "--where 'nope > 1' failed" in capsys.readouterr().err


def test_best_per_task_keeps_highest_reward_with_deterministic_ties(lake_factory, tmp_path):
    uri = lake_factory(
        session_events("a-low", reward=1.0, task_id="puzzle-1")
        + session_events("a-high", reward=3.0, task_id="puzzle-1")
        + session_events("b-tie-2", reward=2.0, task_id="puzzle-2", achievements=["x"])
        + session_events("b-tie-1", reward=2.0, task_id="puzzle-2", achievements=["x"])
        + session_events("b-more", reward=2.0, task_id="puzzle-2", achievements=["x", "y"], turns=3)
        + session_events("c-short", reward=2.0, task_id="puzzle-3", turns=1)
        + session_events("c-long", reward=2.0, task_id="puzzle-3", turns=2)
        + session_events("d-1", reward=2.0, task_id="puzzle-4")
        + session_events("d-2", reward=2.0, task_id="puzzle-4")
    )
    manifest = snap(uri, tmp_path / "out", "--best-per-task")
    assert sids(read(tmp_path / "out")) == ["a-high", "b-more", "c-short", "d-1"]
    assert manifest["counts"]["dropped"] == {"not_best_for_task": 5}


def test_invalid_turns_drop_or_salvage(lake_factory, tmp_path):
    uri = lake_factory(
        session_events("bad", turns=4, invalid=[2])
        + session_events("bad-first", turns=2, invalid=[0])
        + session_events("holes", turns=4, skip_turns=[1])
        + session_events("ok", turns=1)
    )
    manifest = snap(uri, tmp_path / "plain")
    assert sids(read(tmp_path / "plain")) == ["ok"]
    assert manifest["counts"]["dropped"] == {"invalid_turn": 2, "missing_turns": 1}

    manifest = snap(uri, tmp_path / "salvaged", "--salvage")
    rows = {r["metadata"]["session_id"]: r for r in read(tmp_path / "salvaged")}
    assert list(rows) == ["bad", "holes", "ok"]
    assert manifest["counts"]["dropped"] == {"nothing_to_salvage": 1}
    # Truncated before the first invalid turn (2) / the first missing turn (1).
    assert rows["bad"]["messages"] == [SYSTEM, user("bad", 0), call(0), tool(0), user("bad", 1), call(1)]
    assert rows["bad"]["metadata"]["salvaged"] is True
    assert rows["holes"]["messages"] == [SYSTEM, user("holes", 0), call(0)]
    assert rows["ok"]["metadata"]["salvaged"] is False


def test_turn_granularity_with_context(lake_factory, tmp_path):
    uri = lake_factory(session_events("s", turns=3))
    snap(uri, tmp_path / "t0", "--granularity", "turn")
    rows = read(tmp_path / "t0")
    assert [r["metadata"]["turn"] for r in rows] == [0, 1, 2]
    assert rows[1]["messages"] == [SYSTEM, user("s", 1), call(1)]
    snap(uri, tmp_path / "t1", "--granularity", "turn", "--context-turns", "1")
    rows = read(tmp_path / "t1")
    assert rows[2]["messages"] == [SYSTEM, user("s", 1), call(1), tool(1), user("s", 2), call(2)]
    snap(uri, tmp_path / "all", "--granularity", "turn", "--context-turns", "all")
    assert read(tmp_path / "all")[2]["messages"] == [SYSTEM, user("s", 0), call(0), tool(0), user("s", 1), call(1),
                                                     tool(1), user("s", 2), call(2)]


def test_turn_examples_carry_a_system_prompt_sent_only_once(lake_factory, tmp_path):
    events = session_events("s", turns=3)
    for ev in events:  # the task app sends the system prompt in turn 0 only
        if ev["type"] == "turn" and ev["turn"] > 0:
            ev["messages"] = ev["messages"][1:]
    uri = lake_factory(events)
    snap(uri, tmp_path / "out", "--granularity", "turn")
    assert read(tmp_path / "out")[2]["messages"] == [SYSTEM, user("s", 2), call(2)]
    snap(uri, tmp_path / "nosys", "--granularity", "turn", "--no-include-system")
    assert read(tmp_path / "nosys")[0]["messages"] == [user("s", 0), call(0)]


def test_prompt_completion_format(lake_factory, tmp_path):
    uri = lake_factory(session_events("s", turns=2))
    snap(uri, tmp_path / "sess", "--format", "prompt_completion")
    row = read(tmp_path / "sess")[0]
    assert list(row) == ["prompt", "completion", "tools", "metadata"]
    assert row["prompt"] == [SYSTEM, user("s", 0), call(0), tool(0), user("s", 1)]
    assert row["completion"] == [call(1)]
    snap(uri, tmp_path / "turn", "--format", "prompt_completion", "--granularity", "turn", "--no-include-system")
    assert [(r["prompt"], r["completion"]) for r in read(tmp_path / "turn")] == [
        ([user("s", 0)], [call(0)]), ([user("s", 1)], [call(1)])]


def test_tool_calls_and_content_parts_round_trip(lake_factory, tmp_path):
    calls = [{"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"q": "caf\\u00e9 \\"x\\""}'}},
             {"id": "call_2", "type": "function", "function": {"name": "open", "arguments": "{}"}}]
    parts = [{"type": "text", "text": "look: ünïcode \n line"}, {"type": "image_url", "image_url": {"url": "data:x"}}]
    events = session_events("s", turns=1)
    events[1]["messages"] = [
        {"role": "user", "content": parts},
        {"role": "assistant", "content": "thinking", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "result 1", "name": "search"},
        {"role": "tool", "tool_call_id": "call_2", "content": "result 2"},
        {"role": "assistant", "content": "done\t\"quoted\""},
    ]
    uri = lake_factory(events)
    snap(uri, tmp_path / "out")
    assert read(tmp_path / "out")[0]["messages"] == [
        {"role": "user", "content": parts},
        {"role": "assistant", "content": "thinking", "tool_calls": calls},
        {"role": "tool", "content": "result 1", "tool_call_id": "call_1", "name": "search"},
        {"role": "tool", "content": "result 2", "tool_call_id": "call_2"},
        {"role": "assistant", "content": "done\t\"quoted\""},
    ]


def test_val_split_is_by_task_hash(lake_factory, tmp_path):
    events = []
    for i in range(40):
        events += session_events(f"s{i:02d}", task_id=f"task-{i % 10}", turns=1)
    uri = lake_factory(events)
    manifest = snap(uri, tmp_path / "out", "--val-fraction", "0.3", "--split-seed", "5")
    train, val = read(tmp_path / "out"), read(tmp_path / "out", "val.jsonl")
    train_tasks = {r["metadata"]["task_id"] for r in train}
    val_tasks = {r["metadata"]["task_id"] for r in val}
    assert train_tasks and val_tasks and not train_tasks & val_tasks
    assert val_tasks == {f"task-{i}" for i in range(10) if val_key_fraction(5, f"task:task-{i}") < 0.3}
    assert len(train) + len(val) == 40
    assert manifest["counts"]["examples"] == {"train": len(train), "val": len(val)}


def test_dry_run_and_stats_only_write_nothing(varied, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["snapshot", "--lake", varied, "--out", str(out), "--dry-run", "--min-reward", "2"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["counts"]["sessions_kept"] == 3 and plan["counts"]["dropped"] == {"min_reward": 2}
    assert main(["snapshot", "--lake", varied, "--out", str(out), "--stats-only"]) == 0
    stats = json.loads(capsys.readouterr().out)["stats"]
    assert stats["sessions"]["kept"] == 5
    assert stats["kept_sessions"]["by_split"] == {"test": 1, "train": 4}
    assert not out.exists()


def test_refuses_non_empty_out_without_force(varied, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["snapshot", "--lake", varied, "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main(["snapshot", "--lake", varied, "--out", str(out), "--force", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "manifest.json", "notes.txt", "stats.json",
                                                     "train.jsonl", "val.jsonl"]
