"""The three CLIs share one exit convention (schemas.cli): 2 bad input, 1 failure, one line on stderr.

Each runs as a user runs it (`python -m ...` in a fresh process, from a folder of its own).
The trainer's failure case (a corrupted snapshot, exit 1) is tests/trainer/test_cli.py's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from schemas.cli import EXIT_STATUS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(argv: list[str], cwd, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": REPO, "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, cwd=cwd, env=environ,
                          timeout=180)


CASES = {
    "lake bad input: no lake there": (
        ["lake", "snapshot", "--lake", "{tmp}/missing", "--out", "{tmp}/out"], {}, 2,
        "error: no Delta table `sessions` at {tmp}/missing/sessions: is LAKE_URI (or --lake) right?"),
    "lake bad input: a filter value": (
        ["lake", "snapshot", "--lake", "{tmp}/missing", "--min-reward", "lots", "--dry-run"], {}, 2,
        "error: min_reward 'lots' is not a number; use e.g. `--min-reward 3`"),
    "lake failure: wait timed out": (
        ["lake", "wait", "--lake", "{tmp}/missing", "--sessions", "1", "--timeout", "0.3", "--quiet"], {}, 1,
        "error: timed out after 0.3 s: 0/1 sessions ended"),
    "streams bad input: no such file": (
        ["streams", "replay", "jsonl", "{tmp}/missing.jsonl", "--dry-run"], {}, 2,
        "error: {tmp}/missing.jsonl: no such JSONL file"),
    "streams failure: no broker": (
        ["streams", "replay", "jsonl", "{tmp}/one.jsonl", "--bootstrap-servers", "127.0.0.1:{port}", "--no-progress"],
        {"PUBLISH_TIMEOUT_S": "1"}, 1, "error: Kafka at 127.0.0.1:{port} was unreachable for 1s"),
    "trainer bad input: no snapshot there": (
        ["trainer", "--snapshot", "{tmp}/missing"], {}, 2, "error: snapshot directory '{tmp}/missing' does not exist"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_exit_status_and_one_stderr_line(case, tmp_path):
    argv, env, code, start = CASES[case]
    (tmp_path / "one.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    fill = {"tmp": str(tmp_path), "port": str(_closed_port())}
    argv, start = [a.format(**fill) for a in argv], start.format(**fill)

    proc = _run(argv, tmp_path, **env)

    assert proc.returncode == code, proc.stderr[-3000:]
    assert proc.stderr.startswith(start), proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_debug_shows_the_traceback_instead(tmp_path):
    proc = _run(["lake", "snapshot", "--lake", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--debug"],
                tmp_path)

    assert proc.returncode == 1  # Python's own status for an uncaught exception
    assert "Traceback" in proc.stderr and "LakeNotFoundError: no Delta table" in proc.stderr


def test_usage_errors_stay_argparse_s(tmp_path):
    proc = _run(["lake", "snapshot", "--min-reward"], tmp_path)

    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: python -m lake snapshot") and "--min-reward: expected one argument" in proc.stderr


def test_help_states_the_convention(capsys):
    from lake.cli import build_parser
    from streams.__main__ import main as streams

    parser = build_parser()
    assert EXIT_STATUS in " ".join(parser.format_help().split())
    sub = parser._subparsers._group_actions[0].choices
    assert all(EXIT_STATUS in " ".join(p.format_help().split()) for p in sub.values())
    with pytest.raises(SystemExit):
        streams(["replay", "jsonl", "--help"])
    assert EXIT_STATUS in " ".join(capsys.readouterr().out.split())
