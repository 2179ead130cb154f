"""schemas.cli.run_cli: the exit status and the one stderr line every CLI of the project shares."""

from __future__ import annotations

import argparse

import pytest

from schemas.cli import run_cli
from schemas.exceptions import EventValidationError, RolloutLakeError


class _Failed(RolloutLakeError):
    pass


class _Empty(RolloutLakeError, ValueError):
    exit_code = 1


def _raising(exc: BaseException):
    def main(argv: list[str]) -> int:
        raise exc

    return main


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (EventValidationError("turn: expected an int, got 'x'"), 2, "error: turn: expected an int, got 'x'"),
        (_Failed("broker at h:1 unreachable"), 1, "error: broker at h:1 unreachable"),
        (_Empty("the filters kept nothing"), 1, "error: the filters kept nothing"),
        (RuntimeError("boom\nsecond line"), 1,
         "error: unexpected RuntimeError: boom (run with --debug for the traceback)"),
        (ValueError(), 1, "error: unexpected ValueError (run with --debug for the traceback)"),
    ],
)
def test_one_line_and_the_status(exc, code, line, capsys):
    assert run_cli(_raising(exc), []) == code
    captured = capsys.readouterr()
    assert captured.err == line + "\n" and captured.out == ""


def test_interrupt_is_130(capsys):
    assert run_cli(_raising(KeyboardInterrupt()), []) == 130
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("exc", [_Failed("x"), RuntimeError("x"), KeyboardInterrupt()])
def test_debug_shows_the_traceback(exc):
    with pytest.raises(type(exc)):
        run_cli(_raising(exc), ["--debug"])
    with pytest.raises(type(exc)):
        run_cli(_raising(exc), [], debug=True)


def test_argparse_usage_errors_stay_exit_2(capsys):
    def main(argv: list[str]) -> int:
        parser = argparse.ArgumentParser(prog="tool")
        parser.add_argument("--n", type=int)
        parser.parse_args(argv)
        return 0

    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["--n", "many"])
    assert exit_.value.code == 2
    assert "argument --n: invalid int value: 'many'" in capsys.readouterr().err


def test_the_return_value_and_argv_pass_through():
    seen = []
    assert run_cli(lambda argv: seen.append(argv) or 3, ("a", "--b")) == 3
    assert seen == [["a", "--b"]]


def test_a_closed_pipe_ends_quietly_with_141():
    """`python -m lake sql ... | head`: no error line and no traceback once the reader has gone."""
    import subprocess
    import sys

    code = ("import sys\nfrom schemas.cli import run_cli\n"
            "def main(argv):\n    for i in range(200_000):\n        print('row', i)\n    return 0\n"
            "sys.exit(run_cli(main, []))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"row 0\n"
    proc.stdout.close()  # the reader goes away, like `head -1`
    stderr = proc.stderr.read()
    assert proc.wait(30) == 141
    assert stderr == b""
