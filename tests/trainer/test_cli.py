"""User errors: one line on stderr, exit 2 for bad input and 1 for a failure (schemas.cli), no traceback
unless --debug, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trainer.__main__ import main
from trainer.evaluate import main as evaluate

from .conftest import write_snapshot


def _corrupt(path):
    (path / "train.jsonl").write_text((path / "train.jsonl").read_text().replace("move_", "MOVE_"))
    return path


def test_corrupted_snapshot_from_the_command_line(snapshot_factory, tmp_path):
    snapshot = _corrupt(snapshot_factory())
    output = tmp_path / "out"

    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "--snapshot", str(snapshot), "--output", str(output)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path,
    )

    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: ") and "train.jsonl does not match manifest.json: sha256" in proc.stderr
    assert not output.exists() and [p.name for p in tmp_path.iterdir()] == ["snap"]


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("empty", 1, "has no training examples"),  # a result, like `lake snapshot` keeping nothing
        ("unknown_model", 2, "model path '/nonexistent/model' does not exist"),
        ("missing_snapshot", 2, "snapshot directory"),
        ("not_gguf", 2, "is not a .gguf file"),
    ],
)
def test_clear_errors_and_nothing_written(case, code, message, snapshot_factory, tmp_path, capsys):
    snapshot = snapshot_factory(n_train=2, n_val=None)
    model = []
    if case == "empty":
        snapshot = write_snapshot(tmp_path / "empty", [])
    elif case == "unknown_model":
        model = ["--model", "/nonexistent/model"]
    elif case == "missing_snapshot":
        snapshot = tmp_path / "nope"
    elif case == "not_gguf":
        model = ["--model", str(snapshot / "stats.json")]
    output = tmp_path / "out"

    assert main(["--snapshot", str(snapshot), *model, "--output", str(output)]) == code

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert not output.exists()


def test_debug_shows_the_traceback(snapshot_factory, tmp_path):
    from trainer.exceptions import SnapshotIntegrityError

    snapshot = _corrupt(snapshot_factory())

    with pytest.raises(SnapshotIntegrityError):
        main(["--snapshot", str(snapshot), "--output", str(tmp_path / "out"), "--debug"])


def test_a_non_empty_output_is_not_overwritten(snapshot_factory, tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")

    assert main(["--snapshot", str(snapshot_factory()), "--output", str(output)]) == 2

    assert "is not empty; pass another --output or --overwrite" in capsys.readouterr().err
    assert [p.name for p in output.iterdir()] == ["keep.txt"]


def test_evaluate_refuses_a_corrupted_snapshot(snapshot_factory, capsys):
    assert evaluate(["--snapshot", str(_corrupt(snapshot_factory())), "--model", "/nonexistent"]) == 1

    assert "does not match manifest.json" in capsys.readouterr().err


def test_evaluate_needs_a_val_split(snapshot_factory, capsys):
    assert evaluate(["--snapshot", str(snapshot_factory(n_val=None))]) == 2

    assert "has no val.jsonl examples; pass --split train" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-stpes", "2"], "error: unknown argument --max-stpes (did you mean --max-steps?); see `python -m trainer --help`"),
        (["--max-steps", "two"], "error: argument --max-steps/--max_steps: invalid int value: 'two'; see `python -m trainer --help`"),
        ([], "error: the following arguments are required: --snapshot; see `python -m trainer --help`"),
    ],
)
def test_flag_mistakes_are_one_line(argv, message, snapshot_factory, tmp_path, capsys):
    snapshot = [] if not argv else ["--snapshot", str(snapshot_factory())]

    assert main([*snapshot, *argv, "--output", str(tmp_path / "out")]) == 2

    assert capsys.readouterr().err == message + "\n"
    assert not (tmp_path / "out").exists()


def test_help_names_the_command_and_the_readme_spelling():
    proc = subprocess.run([sys.executable, "-m", "trainer", "--help"], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m trainer [-h] --snapshot SNAPSHOT")
    assert "--max-steps MAX_STEPS, --max_steps MAX_STEPS" in proc.stdout
    assert "(default: None)" not in proc.stdout
    assert "(default: 2e-05)" in proc.stdout  # the agent-SFT default, not TRL's


def test_evaluate_typo_is_one_line(snapshot_factory, capsys):
    assert evaluate(["--snapshot", str(snapshot_factory()), "--max-promts", "3"]) == 2

    assert capsys.readouterr().err == (
        "error: unknown argument --max-promts (did you mean --max-prompts?); see `python -m trainer.evaluate --help`\n")
