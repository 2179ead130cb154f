"""The sessions page's filter form: query parameters -> SnapshotSpec, and back to a command line.

The form's field names are the snapshot spec's keys (`min_reward`, `splits`, ...), so the page
filters with the same SQL predicates as `lake snapshot` (lake.spec.session_predicates) and the
"cut this as a snapshot" box can print the exact flags.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lake.spec import SnapshotSpec

__all__ = ["FIELDS", "Field", "parse_filters", "snapshot_command"]


@dataclass(frozen=True)
class Field:
    key: str  # SnapshotSpec key and query parameter
    label: str
    hint: str
    choices: str | None = None  # column whose distinct values the input suggests

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


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


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def snapshot_command(spec: SnapshotSpec, lake_uri: str, *, out: str = "snapshots/NAME") -> str:
    """`python -m lake snapshot ...` that keeps the sessions these filters keep."""
    parts = ["python", "-m", "lake", "snapshot", "--out", out, "--lake", lake_uri]
    data = spec.to_dict()
    for f in FIELDS:
        value: Any = data.get(f.key)
        if value in (None, (), [], {}):
            continue
        if isinstance(value, dict):  # reward bounds per objective
            for objective, bound in value.items():
                text = _number(bound) if objective == "reward" else f"{objective}={_number(bound)}"
                parts += [f.flag, text]
        elif isinstance(value, (list, tuple)):
            parts += [f.flag, ",".join(value)]
        else:
            parts += [f.flag, str(value)]
    return shlex.join(parts)
