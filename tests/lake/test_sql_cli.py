"""`python -m lake sql` is read-only and prints table, csv or one JSON array; `lake stats`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lake.cli import main

from .conftest import session_events

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lake_uri(lake_factory):
    return lake_factory(session_events("s1", reward=2.0, achievements=["a", "b"])
                        + session_events("s2", reward=None, status="truncated", split="test"))


def test_json_format_is_one_array_of_row_objects(lake_uri, capsys):
    assert main(["sql", "SELECT session_id, status, total_reward, achievements, rewards, started_at "
                 "FROM sessions ORDER BY session_id", "--format", "json", "--lake", lake_uri]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"session_id": "s1", "status": "terminated", "total_reward": 2.0, "achievements": ["a", "b"],
         "rewards": {"reward": 2.0}, "started_at": "2026-11-01T10:00:00+00:00"},
        {"session_id": "s2", "status": "truncated", "total_reward": None, "achievements": [],
         "rewards": None, "started_at": "2026-11-01T10:00:00+00:00"},
    ]


def test_csv_and_table_formats(lake_uri, capsys):
    assert main(["sql", "SELECT split, count(*) AS n FROM sessions GROUP BY 1 ORDER BY 1",
                 "--format", "csv", "--lake", lake_uri]) == 0
    assert capsys.readouterr().out.splitlines() == ["split,n", "test,1", "train,1"]
    assert main(["sql", "SELECT role, count(*) AS n FROM messages GROUP BY 1 ORDER BY 1", "--lake", lake_uri]) == 0
    out = capsys.readouterr().out
    assert "assistant" in out and "4 rows" in out


@pytest.mark.parametrize("statement, kind", [
    ("INSERT INTO sessions (session_id) VALUES ('x')", "INSERT"),
    ("DELETE FROM raw_messages", "DELETE"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"),
    ("DROP VIEW sessions", "DROP"),
    ("ATTACH '/tmp/evil.duckdb' AS evil", "ATTACH"),
    ("COPY (SELECT 1) TO '/tmp/out.csv'", "COPY"),
    ("SET enable_external_access = true", "SET"),
    ("SELECT 1; DROP VIEW sessions", None),
])
def test_writes_attach_and_settings_are_refused(lake_uri, capsys, statement, kind):
    assert main(["sql", statement, "--lake", lake_uri]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    if kind:
        assert f"read-only: {kind} statements are refused" in err
    else:
        assert "exactly one SELECT statement" in err


def test_select_cannot_reach_files_outside_the_lake(lake_uri, capsys, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    assert main(["sql", f"SELECT * FROM read_csv('{secret}')", "--lake", lake_uri]) == 2
    assert "disabled by configuration" in capsys.readouterr().err


def test_bad_sql_is_one_line_without_traceback(lake_uri):
    proc = subprocess.run([sys.executable, "-m", "lake", "sql", "SELECT nope FROM sessions", "--lake", lake_uri],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: Binder Error") and "Traceback" not in proc.stderr


def test_stats_json_and_plots(lake_factory, capsys, tmp_path):
    uri = lake_factory(session_events("s1", reward=2.0, achievements=["a", "b"])
                       + session_events("s2", reward=0.0, status="error", env="connections")
                       + [b"garbage"])
    plots = tmp_path / "plots"
    assert main(["stats", "--format", "json", "--lake", uri, "--plots", str(plots)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["sessions"] == 2
    assert stats["sessions_by_status"] == {"error": 1, "terminated": 1}
    assert stats["sessions_by_env"] == {"connections": 1, "crafter": 1}
    assert stats["reward"]["count"] == 2 and stats["reward"]["max"] == 2.0
    assert stats["achievements"] == {"a": 1, "b": 1}
    assert stats["messages_by_role"] == {"assistant": 4, "system": 4, "tool": 4, "user": 4}
    assert stats["dead_letters"] == 1
    assert sorted(p.name for p in plots.iterdir()) == [
        "achievements_count.png", "messages_by_role.png", "reward_histogram.png", "sessions_by_env.png",
        "sessions_by_model.png", "sessions_by_status.png", "top_achievements.png"]
    assert main(["stats", "--lake", uri]) == 0
    assert "sessions by status" in capsys.readouterr().out
