"""User errors: one line on stderr, a non-zero exit, no traceback unless --debug, nothing written."""

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
    ("case", "message"),
    [
        ("empty", "has no training examples"),
        ("unknown_model", "model path '/nonexistent/model' does not exist"),
        ("missing_snapshot", "snapshot directory"),
        ("not_gguf", "is not a .gguf file"),
    ],
)
def test_clear_errors_and_nothing_written(case, message, snapshot_factory, tmp_path, capsys):
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

    assert main(["--snapshot", str(snapshot), *model, "--output", str(output)]) == 1

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

    assert main(["--snapshot", str(snapshot_factory()), "--output", str(output)]) == 1

    assert "is not empty; pass another --output or --overwrite" in capsys.readouterr().err
    assert [p.name for p in output.iterdir()] == ["keep.txt"]


def test_evaluate_refuses_a_corrupted_snapshot(snapshot_factory, capsys):
    assert evaluate(["--snapshot", str(_corrupt(snapshot_factory())), "--model", "/nonexistent"]) == 1

    assert "does not match manifest.json" in capsys.readouterr().err


def test_evaluate_needs_a_val_split(snapshot_factory, capsys):
    assert evaluate(["--snapshot", str(snapshot_factory(n_val=None))]) == 1

    assert "has no val.jsonl examples; pass --split train" in capsys.readouterr().err
