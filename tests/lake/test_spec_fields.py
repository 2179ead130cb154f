"""Every SnapshotSpec field is reachable from `lake snapshot`'s flags and from TOML, from its metadata.

A new field without metadata (or of a kind nobody reads) fails here, before a user finds a
filter that exists in the manifest but cannot be set.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from typing import Any

import pytest

from lake.cli import _spec_from_args, build_parser
from lake.spec import KINDS, SnapshotSpec, flag_of, load_toml, spec_fields, to_flags
from lake.ui.forms import FIELDS, snapshot_command

NAMES = [f.name for f in spec_fields()]


def _example(f: dataclasses.Field) -> Any:
    """A value for the field that is not its default, as a user would write it in TOML."""
    meta, default = f.metadata, getattr(SnapshotSpec(), f.name)
    kind = meta["kind"]
    if kind == "bounds":
        return {"reward": 2.0, "accuracy": 0.5}
    if kind == "names":
        return ["b", "a"]
    if kind == "int":
        return (meta.get("minimum") or 0) + 3
    if kind == "float":
        return 0.25
    if kind == "bool":
        return not default
    if kind == "time":
        return "2026-11-01T10:00:00+00:00"
    if kind == "text":
        return "num_turns > 1"
    if kind == "choice":
        return next(c for c in meta["choices"] if c != default)
    if kind == "turns":
        return "all"
    raise AssertionError(f"no example for kind {kind!r} of field {f.name}: add one here")


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # numbers, and strings as TOML basic strings


def test_every_field_has_metadata_and_a_unique_flag():
    for f in spec_fields():
        missing = {"kind", "help", "group"} - f.metadata.keys()
        assert not missing, f"SnapshotSpec.{f.name} has no {sorted(missing)} in its field(metadata=...)"
        assert f.metadata["kind"] in KINDS, f.name
    flags = [flag_of(f) for f in spec_fields()]
    assert len(set(flags)) == len(flags)
    help_text = build_parser()._subparsers._group_actions[0].choices["snapshot"].format_help()
    for f in spec_fields():
        assert flag_of(f) in help_text, f.name


@pytest.mark.parametrize("name", NAMES)
def test_each_field_round_trips_through_the_flags(name, tmp_path):
    f = next(f for f in spec_fields() if f.name == name)
    spec = SnapshotSpec.from_dict({name: _example(f)})
    assert spec != SnapshotSpec(), f"the example for {name} is its default"

    argv = to_flags(spec)
    if "from_flag" in f.metadata:  # set from files: --exclude-tasks-from FILE
        assert name == "exclude_task_ids", f"add a case for {name}'s {flag_of(f)} here"
        ids = tmp_path / "ids.txt"
        ids.write_text("\n".join(getattr(spec, name)) + "\n")
        argv = [flag_of(f), str(ids)]
    args = build_parser().parse_args(["snapshot", *argv])

    assert _spec_from_args(args)[0] == spec, argv


@pytest.mark.parametrize("name", NAMES)
def test_each_field_round_trips_through_toml(name, tmp_path):
    f = next(f for f in spec_fields() if f.name == name)
    value = _example(f)
    spec = SnapshotSpec.from_dict({name: value})
    for key in (name, *f.metadata.get("aliases", ())):
        for layout in ("{key} = {value}\n", "[filter]\n{key} = {value}\n"):
            path = tmp_path / "filter.toml"
            path.write_text(layout.format(key=key, value=_toml(value)))

            assert SnapshotSpec.from_dict(load_toml(str(path))) == spec, path.read_text()


def test_flags_override_the_config_file(tmp_path):
    config = tmp_path / "filter.toml"
    config.write_text('min_reward = 1\nsplits = ["train"]\ninclude_system = false\n')
    args = build_parser().parse_args(["snapshot", "--config", str(config), "--min-reward", "3", "--include-system"])

    spec = _spec_from_args(args)[0]

    assert (spec.min_reward, spec.splits, spec.include_system) == ({"reward": 3.0}, ("train",), True)


def test_the_ui_command_line_is_the_cli_s():
    assert {f.key for f in FIELDS} <= set(NAMES)
    spec = SnapshotSpec.from_dict({f.key: _example(next(s for s in spec_fields() if s.name == f.key)) for f in FIELDS})

    argv = shlex.split(snapshot_command(spec, "/lake"))

    assert argv[:8] == ["python", "-m", "lake", "snapshot", "--out", "snapshots/NAME", "--lake", "/lake"]
    assert _spec_from_args(build_parser().parse_args(argv[3:]))[0] == spec
