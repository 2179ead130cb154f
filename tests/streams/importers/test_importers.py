"""Importers replayed through the real embedded broker: exact events, and re-imports that add nothing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import parse_event
from streams.__main__ import main
from streams.importers import read_sft_jsonl, read_synth_sqlite, stable_id
from tests.conftest import REPO, bad_synth_sessions, make_synth_db
from tests.streams.conftest import events_by_session, read_topic

EXPECTED_A_TURNS = [
    [
        {"role": "system", "content": "You are playing Crafter."},
        {"role": "user", "content": "=== CRAFTER GAME STATE === step 0"},
        {"role": "assistant", "content": "I will move left.", "tool_calls": [
            {"id": "call_4_0", "type": "function",
             "function": {"name": "interact_many", "arguments": '{"actions":["move_left"]}'}}]},
        {"role": "tool", "content": "moved", "tool_call_id": "call_4_0"},
    ],
    [
        {"role": "user", "content": "step 1: a tree is near"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c7", "type": "function", "function": {"name": "interact_many", "arguments": '{"actions":["do"]}'}}]},
        {"role": "tool", "content": "collected wood", "tool_call_id": "c7"},
    ],
]


def replay_cli(*args: str, capsys=None) -> tuple[int, str, str]:
    rc = main(["replay", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_synth_sqlite_replays_exact_events_and_reimport_is_identical(broker, topic_factory, tmp_path, capsys):
    db = make_synth_db(tmp_path / "crafter_eval.db")
    topic = topic_factory(partitions=4)
    rc, out, _ = replay_cli("sqlite", str(db), "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic,
                            capsys=capsys)
    assert rc == 0
    assert out.strip() == (f"replayed 2 sessions (9 events) from {db} to {topic} at {broker.bootstrap_servers}")
    first = read_topic(broker.bootstrap_servers, topic)
    sessions = events_by_session(first)
    assert sorted(sessions) == ["sess-a", "sess-b"]

    a = sessions["sess-a"]
    assert [e.type for e in a] == ["session_start", "turn", "turn", "session_end", "outcome_reward"]
    start, t0, t1, end, outcome = a
    assert (start.env_name, start.policy_name, start.model, start.seed, start.task_id, start.split, start.run_id) == (
        "crafter", "crafter-react", "gpt-4o-mini", 3, "seed-3", "train", "eval-1")
    assert start.ts.isoformat() == "2025-10-22T23:55:25.533188+00:00"
    assert start.metadata["source"] == "synth_sqlite"
    assert [[m.model_dump() for m in t.messages] for t in (t0, t1)] == EXPECTED_A_TURNS
    assert (t0.turn, t0.reward, t0.achievements, t0.done) == (0, 0.75, [], False)
    assert (t1.turn, t1.reward, t1.achievements, t1.done) == (1, 1.0, ["collect_wood"], True)
    assert t0.metadata == {"source": "synth_sqlite", "step_id": "step-0", "turn_number": 0, "step_index": 0}
    assert t0.ts.isoformat() == "2025-10-22T23:55:26+00:00"
    assert (end.status, end.num_turns, end.ts.isoformat()) == ("terminated", 2, "2025-10-22T23:55:29+00:00")
    assert (outcome.total_reward, outcome.achievements, outcome.source) == (1.0, ["collect_wood"], "synth-ai")
    assert outcome.metadata["achievements_count"] == 1 and outcome.metadata["total_steps"] == 2
    assert [e.event_id for e in a] == [
        stable_id("synth_sqlite", "sess-a", "start"), stable_id("synth_sqlite", "sess-a", "turn", 0),
        stable_id("synth_sqlite", "sess-a", "turn", 1), stable_id("synth_sqlite", "sess-a", "end"),
        stable_id("synth_sqlite", "sess-a", "outcome", 1)]

    b = sessions["sess-b"]
    assert [e.type for e in b] == ["session_start", "turn", "turn", "session_end"]
    assert b[0].env_name == "connections" and b[0].model is None
    assert [[(m.role, m.content) for m in t.messages] for t in b[1:3]] == [
        [("system", "Solve the puzzle."), ("user", "words: a b c d"), ("assistant", "group a b")],
        [("user", "one away"), ("assistant", "group a c")]]
    assert b[1].reward is None and b[3].num_turns == 2

    # The same database again (copied elsewhere: ids never depend on the path) sends the same bytes.
    copy = tmp_path / "elsewhere" / "copy.db"
    copy.parent.mkdir()
    copy.write_bytes(db.read_bytes())
    rc, _, _ = replay_cli("sqlite", str(copy), "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic,
                          capsys=capsys)
    assert rc == 0
    both = read_topic(broker.bootstrap_servers, topic)
    second = [r for r in both if r not in first]
    assert len(both) == 2 * len(first)
    assert sorted((k, v) for _, _, k, v in second) == sorted((k, v) for _, _, k, v in first)


def test_synth_sqlite_skips_a_bad_session_whole_and_says_why(tmp_path, capsys):
    db = make_synth_db(tmp_path / "traces.db", bad_session=True)
    rc, out, err = replay_cli("sqlite", str(db), "--dry-run", capsys=capsys)
    assert rc == 1
    assert "skipped session sess-bad: message 30: message_type 'policy_tool_call' is not one of" in err
    assert out.strip() == (f"replayed 2 sessions (9 events) from {db} validated (dry run); "
                           "skipped 1 invalid sessions (listed above)")
    assert [s.session_id for s in read_synth_sqlite(db) if s.error is None] == ["sess-a", "sess-b"]


def test_replay_reports_unusable_sources_in_one_line(tmp_path, capsys):
    not_synth = tmp_path / "other.db"
    sqlite3.connect(not_synth).execute("CREATE TABLE t (x)").connection.close()
    assert main(["replay", "sqlite", str(not_synth)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {not_synth}: no session_traces table; expected a synth-ai tracing_v3 database (tables seen: t)"
    missing = tmp_path / "missing.jsonl"
    assert main(["replay", "jsonl", str(missing), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: no such JSONL file"


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def sft_files(tmp_path: Path) -> list[Path]:
    # Per-step records of one rollout (seed 001's layout), out of order on disk.
    steps = [
        {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": f"obs {t}"},
                      {"role": "assistant", "content": f"act {t}"}],
         "metadata": {"run_id": "r1", "turn": t, "reward": float(t), "env_name": "crafter", "seed": 5,
                      "policy_name": "crafter-react"}}
        for t in (1, 0, 2)
    ]
    # A cumulative log: every line repeats the conversation so far.
    convo = [{"role": "system", "content": "s"}, {"role": "user", "content": "u0"}, {"role": "assistant", "content": "a0"},
             {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}]
    cumulative = [{"messages": convo[:3], "metadata": {"session_id": "cum-1"}},
                  {"messages": convo, "metadata": {"session_id": "cum-1", "total_reward": 2, "achievements": ["x"]}}]
    # Whole rollouts, one per line, no ids (seed 000's layout): one with tool calls.
    whole = {"messages": [
        {"role": "user", "content": "state"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "act", "arguments": "{\"a\": 1}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "ok"},
        {"role": "assistant", "content": "done"}],
        "metadata": {"env_name": "crafter", "total_reward": 1, "achievements_count": 1}}
    return [write_jsonl(tmp_path / "sft_r1.jsonl", steps + cumulative),
            write_jsonl(tmp_path / "sft_whole.jsonl", [whole]),
            write_jsonl(tmp_path / "sft_whole_copy.jsonl", [whole])]


def test_sft_jsonl_replays_sessions_with_one_turn_per_reply(broker, topic_factory, tmp_path, capsys):
    files = sft_files(tmp_path)
    topic = topic_factory(partitions=2)
    rc, out, _ = replay_cli("jsonl", *map(str, files), "--bootstrap-servers", broker.bootstrap_servers,
                            "--topic", topic, capsys=capsys)
    assert rc == 0
    assert out.strip() == f"replayed 3 sessions (15 events) from 3 files to {topic} at {broker.bootstrap_servers}"
    first = read_topic(broker.bootstrap_servers, topic)
    sessions = events_by_session(first)
    run_sid = "sft-" + stable_id("sft_jsonl", "run:r1")
    whole_sids = [sid for sid in sessions if sid not in (run_sid, "cum-1")]
    assert len(whole_sids) == 1  # the copied line is the same session, not a new one

    run = sessions[run_sid]
    assert [e.type for e in run] == ["session_start", "turn", "turn", "turn", "session_end"]
    assert (run[0].env_name, run[0].seed, run[0].policy_name, run[0].run_id) == ("crafter", 5, "crafter-react", "r1")
    assert [[m.content for m in t.messages] for t in run[1:4]] == [
        ["sys", "obs 0", "act 0"], ["sys", "obs 1", "act 1"], ["sys", "obs 2", "act 2"]]
    assert [t.reward for t in run[1:4]] == [0.0, 1.0, 2.0]

    cum = sessions["cum-1"]
    assert [e.type for e in cum] == ["session_start", "turn", "turn", "session_end", "outcome_reward"]
    assert [[m.content for m in t.messages] for t in cum[1:3]] == [["s", "u0", "a0"], ["u1", "a1"]]
    assert (cum[4].total_reward, cum[4].achievements) == (2.0, ["x"])

    whole = sessions[whole_sids[0]]
    assert [e.type for e in whole] == ["session_start", "turn", "turn", "session_end", "outcome_reward"]
    assert [m.role for m in whole[1].messages] == ["user", "assistant", "tool"]
    assert whole[1].messages[1].tool_calls[0].function.arguments == '{"a": 1}'
    assert [m.content for m in whole[2].messages] == ["done"]
    assert whole[3].num_turns == 2 and whole[4].total_reward == 1.0

    # Importing again yields the very same event ids (and bytes): the worker drops them all.
    again = [e for s in read_sft_jsonl(files) for e in s.events]
    assert sorted(e.event_id for e in again) == sorted(parse_event(v).event_id for *_, v in first)


def test_python_m_streams_replay_runs_as_a_command(broker, topic_factory, tmp_path):
    db = make_synth_db(tmp_path / "traces.db")
    topic = topic_factory(partitions=1)
    proc = subprocess.run(
        [sys.executable, "-m", "streams", "replay", "sqlite", str(db), "--topic", topic],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(f"to {topic} at {broker.bootstrap_servers}")
    assert len(read_topic(broker.bootstrap_servers, topic)) == 9


@pytest.mark.parametrize("meta_key", ["session_id", "run_id"])
def test_sft_jsonl_session_ids_come_from_the_source(tmp_path, meta_key):
    line = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "metadata": {meta_key: "abc"}}
    (session,) = read_sft_jsonl([write_jsonl(tmp_path / "x.jsonl", [line])])
    want = "abc" if meta_key == "session_id" else "sft-" + stable_id("sft_jsonl", "run:abc")
    assert session.session_id == want and session.error is None


def test_synth_sqlite_reads_the_metadata_keys_synth_ai_filter_reads(tmp_path):
    db = make_synth_db(tmp_path / "traces.db", filter_keys=True)
    sessions = {s.session_id: s for s in read_synth_sqlite(db)}

    judged = sessions["sess-j"]
    assert judged.error is None
    start, turn, end, *judges = judged.events
    # splits / task_ids / models filters match these keys; judge scores become objectives.
    assert (start.split, start.task_id, start.model, start.env_name) == ("val", "17", "gpt-4o", "math")
    assert start.ts.isoformat() == "2025-10-25T00:00:00+00:00"  # min/max_created_at
    assert [(m.role, m.content) for m in turn.messages] == [("user", "2+2?"), ("assistant", "4")]
    assert end.num_turns == 1
    assert [(j.type, j.objective, j.total_reward) for j in judges] == [
        ("outcome_reward", "judge:quality", 0.8), ("outcome_reward", "judge:style", 0.5)]
    assert sessions["sess-a"].events[0].split == "train"  # `split` still works without task_split


def test_synth_sqlite_bad_rows_skip_their_session_not_the_import(tmp_path, capsys):
    db = make_synth_db(tmp_path / "traces.db")
    reasons = bad_synth_sessions(db)
    rc, out, err = replay_cli("sqlite", str(db), "--dry-run", capsys=capsys)
    assert rc == 1
    assert out.strip().startswith("replayed 2 sessions (9 events)") and "skipped 6 invalid sessions" in out
    skipped = dict(line.removeprefix("skipped session ").split(": ", 1) for line in err.strip().splitlines())
    assert sorted(skipped) == sorted(reasons)
    for sid, reason in reasons.items():
        assert skipped[sid].startswith(reason), (sid, skipped[sid])


def test_sft_jsonl_bad_lines_skip_their_session_not_the_import(tmp_path, capsys):
    pair = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    deep = "[" * 5000 + "]" * 5000
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([
        json.dumps({"messages": pair, "metadata": {"session_id": "good"}}),
        json.dumps({"messages": pair, "metadata": {"session_id": "t-inf", "created_at": "inf"}}),
        json.dumps({"messages": pair, "metadata": {"session_id": "t-big", "created_at": 1e22}}),
        json.dumps({"messages": ["q", 3], "metadata": {"session_id": "not-obj"}}),
        '{"messages": [{"role": "user", "content": ' + deep + '}]}',
        json.dumps({"messages": pair, "metadata": {"session_id": "nested", "x": json.loads("[" * 300 + "]" * 300)}}),
        "{oops",
        json.dumps({"messages": pair + [{"role": "user", "content": "again"}]}),
    ]) + "\n")
    rc, out, err = replay_cli("jsonl", str(path), "--dry-run", capsys=capsys)
    assert rc == 1
    assert out.strip().startswith("replayed 2 sessions") and "skipped 6 invalid sessions" in out
    assert err.strip().splitlines() == [
        "skipped session t-inf: mixed.jsonl:2: metadata.created_at 'inf' is not a finite time",
        "skipped session t-big: mixed.jsonl:3: metadata.created_at 1e+22 is out of range: expected epoch seconds "
        "or milliseconds within years 1-9999",
        "skipped session not-obj: mixed.jsonl:4: message 0 is a JSON str, expected an object with a `role`",
        "skipped session mixed.jsonl:5: unreadable line: JSON nested too deeply to read; keep content and metadata shallow",
        "skipped session nested: session_start event cannot be encoded as JSON: it is nested too deeply; keep "
        "content and metadata shallow",
        "skipped session mixed.jsonl:7: unreadable line: not JSON (Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1))",
    ]


def test_sft_jsonl_files_reusing_a_session_id_are_refused_or_namespaced(tmp_path, capsys):
    def rollout(name: str, actions: list[str]) -> Path:
        return write_jsonl(tmp_path / name, [
            {"messages": [{"role": "user", "content": f"obs {t}"}, {"role": "assistant", "content": a}],
             "metadata": {"session_id": "0", "turn": t}} for t, a in enumerate(actions)])

    a, b = rollout("a.jsonl", ["left", "right"]), rollout("b.jsonl", ["up", "down", "do"])
    rc, out, err = replay_cli("jsonl", str(a), str(b), "--dry-run", capsys=capsys)
    assert rc == 2 and out == ""
    assert err.strip() == (
        "error: session '0' appears in a.jsonl, b.jsonl: lines of different files would merge into one session and "
        "the later file's turns be dropped as duplicates; pass --namespace-by-file to import them as separate "
        "sessions (ids become '<file name>:<id>'), or concatenate the files first if they hold one session")

    sessions = {s.session_id: s for s in read_sft_jsonl([a, b, a], namespace_by_file=True)}  # `a` named twice: read once
    assert sorted(sessions) == ["a.jsonl:0", "b.jsonl:0"]
    turns = {sid: [t.messages[1].content for t in s.events if t.type == "turn"] for sid, s in sessions.items()}
    assert turns == {"a.jsonl:0": ["left", "right"], "b.jsonl:0": ["up", "down", "do"]}
    assert [s.session_id for s in read_sft_jsonl([a, a])] == ["0"]


def test_sft_jsonl_reader_streams_its_files(tmp_path):
    """Memory while reading follows one session, not the files: 16 MB of JSONL, a small fraction of it traced."""
    import tracemalloc

    path = tmp_path / "big.jsonl"
    filler = "x" * 4000
    with path.open("w") as fh:
        for i in range(2000):
            for t in range(2):
                fh.write(json.dumps({"messages": [{"role": "user", "content": f"{i} {t} {filler}"},
                                                  {"role": "assistant", "content": "ok"}],
                                     "metadata": {"session_id": f"s{i}", "turn": t}}) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for s in read_sft_jsonl([path]) if s.error is None and len(s.events) == 4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 2000
    assert peak < size / 8, f"peak {peak} bytes while reading a {size}-byte file"
