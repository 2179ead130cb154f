"""Experiment comparison straight from the lake."""

from __future__ import annotations

import json
import math

from lake.compare import compare_runs
from lake.reader import connect
from streams.devtools.synthetic import make_sessions
from streams.worker.offline import write_events


def test_compare_groups_by_model_and_run_with_intervals(tmp_path):
    lake = str(tmp_path / "lake")
    base = make_sessions(6, 3, seed=1, run_id="base")
    tuned = make_sessions(4, 3, seed=2, run_id="tuned")
    write_events(lake, [e for s in base + tuned for e in s.events])
    with connect(lake) as con:
        rows = compare_runs(con, by=("run_id",))
    by_run = {r["run_id"]: r for r in rows}
    assert [r["run_id"] for r in rows] == ["base", "tuned"]
    assert by_run["base"]["sessions"] == 6 and by_run["tuned"]["sessions"] == 4
    rewards = [e["total_reward"] for s in base for e in s.events if e["type"] == "outcome_reward"]
    mean = sum(rewards) / len(rewards)
    assert math.isclose(by_run["base"]["reward_mean"], mean)
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1))
    assert math.isclose(by_run["base"]["reward_ci95"], 1.96 * std / math.sqrt(len(rewards)))
    valid = [e["valid"] for s in base for e in s.events if e["type"] == "turn"]
    # Every session has the same number of turns, so the mean of per-session rates is the overall rate.
    assert math.isclose(by_run["base"]["valid_tool_call_rate"], sum(valid) / len(valid))
    rates = [sum(e["valid"] for e in s.events if e["type"] == "turn") / 3 for s in base]
    rate_std = math.sqrt(sum((r - sum(rates) / 6) ** 2 for r in rates) / 5)
    assert math.isclose(by_run["base"]["valid_tool_call_rate_ci95"], 1.96 * rate_std / math.sqrt(6), abs_tol=1e-12)
    assert by_run["base"]["turns_mean"] == 3


def test_compare_command_prints_json_and_refuses_unknown_groups(tmp_path, capsys):
    import json

    from lake.cli import main

    lake = str(tmp_path / "lake")
    write_events(lake, [e for s in make_sessions(3, 2, seed=1, run_id="r1") for e in s.events])
    assert main(["compare", "--lake", lake, "--by", "run_id", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["sessions"]) for r in rows] == [("r1", 3)]
    assert main(["compare", "--lake", lake, "--by", "seed"]) == 2
    assert "cannot group by ['seed']" in capsys.readouterr().err
    assert main(["compare", "--lake", lake]) == 0
    assert "experiments" in capsys.readouterr().out


def test_compare_where_runs_in_the_sql_sandbox(tmp_path, capsys):
    """--where is user SQL: it filters, but reads no file outside the lake and cannot break out."""
    from lake.cli import main

    lake = str(tmp_path / "lake")
    write_events(lake, [e for s in make_sessions(3, 2, seed=1, run_id="r1")
                        + make_sessions(2, 2, seed=2, run_id="r2") for e in s.events])
    assert main(["compare", "--lake", lake, "--by", "run_id", "--format", "json", "--where", "run_id = 'r2'"]) == 0
    assert [(r["run_id"], r["sessions"]) for r in json.loads(capsys.readouterr().out)] == [("r2", 2)]

    secret = tmp_path / "hostname"
    secret.write_text("s3cret-host\n")
    leak = f"CAST((SELECT content FROM read_text('{secret}')) AS INT)=1"
    assert main(["compare", "--lake", lake, "--where", leak]) == 2
    err = capsys.readouterr().err
    assert "disabled by configuration" in err and "s3cret" not in err
    assert main(["compare", "--lake", lake, "--where",
                 "CAST((SELECT content FROM read_text('/etc/hostname')) AS INT)=1"]) == 2
    assert "disabled by configuration" in capsys.readouterr().err

    for escape in ("TRUE) GROUP BY ALL; DROP VIEW sessions; SELECT (1", "TRUE; SET enable_external_access = true"):
        assert main(["compare", "--lake", lake, "--where", escape]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --where ") and "is not one SQL predicate" in err
