"""Every command's --help exits 0 and names the command as a user types it (from any folder)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lake.cli import build_parser


def _lake_subcommands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


COMMANDS = [
    ["lake"],
    *[["lake", name] for name in _lake_subcommands()],
    ["streams"],
    ["streams", "broker"],
    ["streams", "replay"],
    ["trainer"],
    ["trainer.evaluate"],
    ["examples.crafter"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_help_exits_0(argv, tmp_path):
    proc = subprocess.run([sys.executable, "-m", *argv, "--help"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: python -m {' '.join(argv)}"), proc.stdout[:200]
    assert "Traceback" not in proc.stderr
    assert "(default: None)" not in proc.stdout


def test_every_lake_subcommand_is_covered():
    assert {"sql", "stats", "compare", "snapshot", "wait", "maintain", "ui"} <= set(_lake_subcommands())
