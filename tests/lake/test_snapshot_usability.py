"""What a newcomer hits first: empty selections, manifests used from elsewhere, val splits, synth-ai TOML files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from lake.cli import main
from streams.importers import read_synth_sqlite
from streams.importers.common import loads_maybe
from streams.worker.offline import write_events
from tests.conftest import make_synth_db

from .conftest import session_events


def read(out: Path, name: str = "train.jsonl") -> list[dict]:
    return [json.loads(line) for line in (out / name).read_text().splitlines()]


def test_an_empty_selection_exits_1_with_reasons_per_filter_and_writes_nothing(lake_factory, tmp_path, capsys):
    uri = lake_factory(session_events("a", status="truncated", achievements=["x", "y"])
                       + session_events("b", status="truncated", achievements=["x"]))
    out = tmp_path / "out"

    assert main(["snapshot", "--lake", uri, "--out", str(out), "--min-achievements", "2", "--require-termination"]) == 1

    err = capsys.readouterr().err
    assert err == (
        "error: no examples: kept 0 of 2 sessions (dropped: require_termination 2; each filter alone drops: "
        "require_termination 2, min_achievements 1; sessions by status: truncated 2). Loosen the filters "
        "(`--dry-run` shows the counts) or pass --allow-empty to write an empty snapshot\n"
    )
    assert not out.exists()

    assert main(["snapshot", "--lake", uri, "--out", str(out), "--require-termination", "--allow-empty",
                 "--no-progress"]) == 0
    assert (out / "train.jsonl").read_text() == "" and json.loads((out / "manifest.json").read_text())["counts"][
        "sessions_kept"] == 0


def test_an_empty_lake_says_so(tmp_path, capsys):
    lake = str(tmp_path / "lake")
    write_events(lake, [])  # the tables exist, nothing in them

    assert main(["snapshot", "--lake", lake, "--out", str(tmp_path / "out")]) == 1
    assert "the lake has no sessions yet; is the worker running" in capsys.readouterr().err


def test_the_manifest_records_the_absolute_lake_so_it_reproduces_from_any_folder(lake_factory, tmp_path, monkeypatch):
    uri = Path(lake_factory(session_events("a") + session_events("b")))
    monkeypatch.chdir(uri.parent)
    assert main(["snapshot", "--lake", uri.name, "--out", "snap", "--no-progress"]) == 0
    manifest = json.loads((uri.parent / "snap" / "manifest.json").read_text())
    assert manifest["lake_uri"] == str(uri.resolve())

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["snapshot", "--from-manifest", str(uri.parent / "snap" / "manifest.json"), "--out", "again",
                 "--no-progress"]) == 0
    assert (elsewhere / "again" / "train.jsonl").read_bytes() == (uri.parent / "snap" / "train.jsonl").read_bytes()


def test_a_val_split_never_comes_out_empty_nor_takes_every_task(lake_factory, tmp_path):
    uri = lake_factory([e for i in range(3) for e in session_events(f"s{i}", task_id=f"task-{i}")])
    for fraction, want_val in (("0.001", 1), ("0.999", 2)):
        out = tmp_path / fraction
        assert main(["snapshot", "--lake", uri, "--out", str(out), "--val-fraction", fraction, "--no-progress"]) == 0
        val_tasks = {r["metadata"]["task_id"] for r in read(out, "val.jsonl")}
        train_tasks = {r["metadata"]["task_id"] for r in read(out)}
        assert len(val_tasks) == want_val and len(train_tasks) == 3 - want_val and not val_tasks & train_tasks


# -- synth-ai `filter` TOML --------------------------------------------------------------------------------


def _add_sessions(db_path: Path) -> None:
    """Two more Crafter sessions: one with reward 0 (synth-ai's min_official_score drops it), one with 3 turns."""
    db = sqlite3.connect(db_path)
    for sid, created, reward, turns in (("sess-c", "2025-10-22T23:57:00+00:00", 0.0, 2),
                                        ("sess-d", "2025-10-22T23:58:00+00:00", 2.0, 3)):
        db.execute("INSERT INTO session_traces VALUES (?, ?, ?, 0, ?, ?)",
                   (sid, created, turns, 3 * turns, json.dumps({"env_name": "crafter", "task_id": sid})))
        for t in range(turns):
            step = db.execute("INSERT INTO session_timesteps (session_id, step_id, step_index, turn_number, started_at) "
                              "VALUES (?, ?, ?, ?, ?)", (sid, f"step-{t}", t, t, created)).lastrowid
            db.executemany("INSERT INTO messages (session_id, timestep_id, message_type, content, timestamp, metadata) "
                           "VALUES (?, ?, ?, ?, ?, '{}')", [
                               (sid, step, "system", "You are playing Crafter.", created),
                               (sid, step, "user", f"{sid} observation {t}", created),
                               (sid, step, "assistant", json.dumps([{"tool_name": "act", "arguments": {"actions": ["do"]}}]),
                                created),
                           ])
        db.execute("INSERT INTO outcome_rewards (session_id, total_reward, achievements_count, total_steps, created_at) "
                   "VALUES (?, ?, 0, ?, ?)", (sid, reward, turns, created))
    db.commit()
    db.close()


def synth_ai_filter(db_path: Path, *, min_official_score: float | None = None) -> list[tuple[str, str]]:
    """synth-ai's own `filter` selection (seeds 000/001): sessions with an outcome reward >= the score, their
    messages by timestamp, one example per user -> assistant pair. Returns (session_id, user content) per example."""
    db = sqlite3.connect(db_path)
    sessions = [r[0] for r in db.execute("SELECT session_id FROM session_traces ORDER BY created_at, session_id")]
    if min_official_score is not None:
        rewarded = {r[0] for r in db.execute("SELECT session_id FROM outcome_rewards WHERE total_reward >= ?",
                                             (min_official_score,))}
        sessions = [s for s in sessions if s in rewarded]
    examples = []
    for sid in sessions:
        pending = None
        for kind, content in db.execute("SELECT message_type, content FROM messages WHERE session_id = ? "
                                        "ORDER BY timestamp ASC, id ASC", (sid,)):
            if kind == "user":
                pending = loads_maybe(content)
            elif kind == "assistant" and pending is not None:
                examples.append((sid, pending))
                pending = None
    db.close()
    return examples


def test_a_synth_ai_filter_toml_works_unchanged_and_selects_what_synth_ai_selects(tmp_path, monkeypatch, capsys):
    db = make_synth_db(tmp_path / "crafter_eval.db")
    _add_sessions(db)
    lake = str(tmp_path / "lake")
    write_events(lake, [e for s in read_synth_sqlite(db) for e in s.events])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKE_URI", lake)
    Path("filter_sft_dataset.toml").write_text(
        '[filter]\ndb = "traces/v3/crafter_eval.db"\noutput = "ft_data/crafter_sft.jsonl"\n'
        "min_official_score = 0.01  # Only traces with rewards > 0\n")

    assert main(["snapshot", "--config", "filter_sft_dataset.toml", "--no-progress"]) == 0

    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"note: ignoring `db = 'traces/v3/crafter_eval.db'` in filter_sft_dataset.toml: the lake at "
                      f"LAKE_URI ({lake}) holds the traces (import a database once with "
                      "`python -m streams replay sqlite DB`)")
    assert err[1] == ("note: writing the snapshot to ft_data/crafter_sft/ for `output = 'ft_data/crafter_sft.jsonl'` "
                      "(ft_data/crafter_sft/train.jsonl holds the examples)")
    rows = read(tmp_path / "ft_data" / "crafter_sft")
    expected = synth_ai_filter(db, min_official_score=0.01)
    assert {sid for sid, _ in expected} == {"sess-a", "sess-d"}
    assert [(r["metadata"]["session_id"], r["messages"][0]["content"]) for r in rows] == expected
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)

    # Without a score every session with a user -> assistant pair counts, the connections one included.
    Path("all.toml").write_text('[filter]\ndb = "traces/v3/crafter_eval.db"\noutput = "ft_data/all.jsonl"\n')
    assert main(["snapshot", "--config", "all.toml", "--no-progress"]) == 0
    rows = read(tmp_path / "ft_data" / "all")
    assert [(r["metadata"]["session_id"], r["messages"][0]["content"]) for r in rows] == synth_ai_filter(db)
