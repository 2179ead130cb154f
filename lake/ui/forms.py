"""The sessions page's filter form: query parameters -> SnapshotSpec, and back to a command line.

The form's field names are the snapshot spec's keys (`min_reward`, `splits`, ...), so the page
filters with the same SQL predicates as `lake snapshot` (lake.spec.session_predicates) and the
"cut this as a snapshot" box prints the exact flags, from the spec fields' own metadata
(lake.spec.to_flags). Labels and hints here are the page's; flags and parsing are the spec's.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from lake.spec import SnapshotSpec, to_flags

__all__ = ["FIELDS", "Field", "parse_filters", "snapshot_command"]


@dataclass(frozen=True)
class Field:
    key: str  # SnapshotSpec key and query parameter
    label: str
    hint: str
    choices: str | None = None  # column whose distinct values the input suggests


FIELDS = (
    Field("min_reward", "min reward", "X or OBJ=X"),
    Field("max_reward", "max reward", "X or OBJ=X"),
    Field("min_achievements", "min achievements", "N"),
    Field("required_achievements", "achievements", "A,B (all of them)", "achievement"),
    Field("splits", "split", "train,test", "split"),
    Field("task_ids", "task", "A,B", "task_id"),
    Field("models", "model", "A,B", "model"),
    Field("run_ids", "run", "A,B", "run_id"),
    Field("statuses", "status", "terminated,truncated", "status"),
    Field("judgment", "judgment", "acceptable", "judgment"),
    Field("envs", "env", "A,B", "env_name"),
    Field("policy_names", "policy", "A,B", "policy_name"),
    Field("max_turns", "max turns", "N"),
)
_KEYS = {f.key for f in FIELDS}


def parse_filters(params: Mapping[str, str]) -> tuple[dict[str, str], SnapshotSpec]:
    """The non-empty filter fields as typed, and the spec they make (FilterSpecError if bad)."""
    given = {k: str(v).strip() for k, v in params.items() if k in _KEYS and str(v).strip()}
    return given, SnapshotSpec.from_dict(given)


def snapshot_command(spec: SnapshotSpec, lake_uri: str, *, out: str = "snapshots/NAME") -> str:
    """`python -m lake snapshot ...` that keeps the sessions these filters keep."""
    parts = ["python", "-m", "lake", "snapshot", "--out", out, "--lake", lake_uri]
    return shlex.join(parts + to_flags(spec, [f.key for f in FIELDS]))
