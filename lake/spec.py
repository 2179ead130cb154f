"""The snapshot spec: which sessions to keep and how to shape them, from flags or TOML.

Keys mirror the command-line flags (`--min-reward` <-> `min_reward`); synth-ai's db-less
filter keys are accepted as aliases. Every session filter becomes one SQL predicate tagged
with the reason a session fails it, so a snapshot can count what it dropped and why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from lake.exceptions import FilterSpecError

__all__ = ["SnapshotSpec", "load_toml", "session_predicates", "SYNTH_AI_ALIASES"]

GRANULARITIES = ("session", "turn")
FORMATS = ("messages", "prompt_completion", "preference")
DEFAULT_OBJECTIVE = "reward"

# synth-ai `[filter]` keys -> ours.
SYNTH_AI_ALIASES = {
    "min_official_score": "min_reward",
    "max_official_score": "max_reward",
    "output": "out",
    "env_names": "envs",
    "policies": "policy_names",
}
_LIST_KEYS = ("required_achievements", "statuses", "splits", "task_ids", "models", "envs",
              "policy_names", "run_ids", "judgment", "exclude_task_ids")
# Bounds on a task group's reward statistics (the `task_stats` view), per objective.
_TASK_BOUNDS = ("min_task_std", "max_task_mean", "min_task_mean")


@dataclass(frozen=True)
class SnapshotSpec:
    """Everything that decides a snapshot's bytes; recorded whole in manifest.json."""

    min_reward: dict[str, float] = field(default_factory=dict)  # objective -> inclusive bound
    max_reward: dict[str, float] = field(default_factory=dict)
    min_achievements: int | None = None
    required_achievements: tuple[str, ...] = ()
    max_turns: int | None = None
    require_termination: bool = False
    statuses: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    envs: tuple[str, ...] = ()
    policy_names: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    min_created_at: str | None = None  # ISO 8601, inclusive, against started_at
    max_created_at: str | None = None
    judgment: tuple[str, ...] = ()
    where: str | None = None
    limit: int | None = None  # sessions, the first N in snapshot order
    best_per_task: bool = False
    salvage: bool = False
    granularity: str = "session"
    context_turns: int | None = 0  # previous turns per turn example; None = all
    format: str = "messages"
    include_system: bool = True
    val_fraction: float = 0.0
    split_seed: int = 0
    # Group statistics over the sessions that pass the filters above, per task_id and objective.
    min_task_std: dict[str, float] = field(default_factory=dict)
    max_task_mean: dict[str, float] = field(default_factory=dict)
    min_task_mean: dict[str, float] = field(default_factory=dict)
    top_k_per_task: int | None = None  # the best K sessions per task (best_per_task is K = 1)
    # Decontamination: these task_ids never reach the output (from --exclude-tasks-from).
    exclude_task_ids: tuple[str, ...] = ()
    # format "preference": chosen and rejected rewards differ by at least this much (and > 0).
    min_margin: float = 0.0
    # Invalid or zero-reward assistant turns stay as context with "weight": 0 (no loss).
    mask_invalid_turns: bool = False

    # -- building -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnapshotSpec:
        """Validate and normalise a mapping of spec keys (TOML, flags or a manifest's spec)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for raw_key, value in data.items():
            key = SYNTH_AI_ALIASES.get(raw_key, raw_key).replace("-", "_")
            if key == "db":
                raise FilterSpecError(
                    "`db` is not used: the lake replaces the trace database; set LAKE_URI or --lake"
                )
            if key not in known:
                raise FilterSpecError(
                    f"unknown filter key `{raw_key}`; valid keys are: {', '.join(sorted(known))}"
                )
            if value is None:
                continue
            values[key] = _normalise(key, value)
        spec = cls(**values)
        spec._check()
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The full spec as plain JSON-able values, every key present (defaults included)."""
        out = dataclasses.asdict(self)
        for key in _LIST_KEYS:
            out[key] = list(out[key])
        return out

    def _check(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise FilterSpecError(f"granularity {self.granularity!r} is not one of {', '.join(GRANULARITIES)}")
        if self.format not in FORMATS:
            raise FilterSpecError(f"format {self.format!r} is not one of {', '.join(FORMATS)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise FilterSpecError(f"val_fraction {self.val_fraction} must be in [0, 1)")
        if self.format == "preference" and (self.best_per_task or self.top_k_per_task is not None):
            raise FilterSpecError(
                "format preference pairs the rollouts of a task; drop --best-per-task/--top-k-per-task, "
                "they would leave nothing to pair"
            )
        if self.top_k_per_task is not None and self.top_k_per_task < 1:
            raise FilterSpecError(f"top_k_per_task {self.top_k_per_task} must be >= 1")
        if self.min_margin < 0 or math.isnan(self.min_margin):
            raise FilterSpecError(f"min_margin {self.min_margin} must be >= 0")
        for name in ("min_achievements", "max_turns", "limit", "context_turns"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise FilterSpecError(f"{name} {value} must be >= 0")


def _normalise(key: str, value: Any) -> Any:
    try:
        if key in ("min_reward", "max_reward", *_TASK_BOUNDS):
            return _bounds(key, value)
        if key in _LIST_KEYS:
            if isinstance(value, str):
                value = value.split(",")
            if not isinstance(value, (list, tuple)):
                raise FilterSpecError(f"{key} must be a list of strings, got {value!r}")
            return tuple(sorted({str(v).strip() for v in value if str(v).strip()}))
        if key in ("min_created_at", "max_created_at"):
            return _iso(key, value)
        if key == "context_turns":
            if isinstance(value, str) and value.lower() == "all":
                return None
            return _int(key, value)
        if key in ("min_achievements", "max_turns", "limit", "split_seed", "top_k_per_task"):
            return _int(key, value)
        if key in ("val_fraction", "min_margin"):
            return float(value)
        if key in ("require_termination", "best_per_task", "salvage", "include_system", "mask_invalid_turns"):
            if not isinstance(value, bool):
                raise FilterSpecError(f"{key} must be true or false, got {value!r}")
            return value
        if key == "format" and value == "conversational":
            return "messages"
        if key == "where":
            return str(value).strip() or None
        return value
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FilterSpecError):
            raise
        raise FilterSpecError(f"{key}: {exc}") from exc


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise FilterSpecError(f"{key} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise FilterSpecError(f"{key} must be an integer, got {value!r}") from None


def _bounds(key: str, value: Any) -> dict[str, float]:
    """`3`, `"3"`, `"accuracy=0.5"`, a list of those, or a {objective: value} table."""
    items: list[tuple[str, Any]] = []
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        for part in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(part, str) and "=" in part:
                obj, _, num = part.partition("=")
                items.append((obj.strip(), num))
            else:
                items.append((DEFAULT_OBJECTIVE, part))
    out: dict[str, float] = {}
    for obj, num in items:
        if isinstance(num, bool):
            raise FilterSpecError(f"{key} for objective {obj!r} must be a number, got {num!r}")
        try:
            number = float(num)
        except (TypeError, ValueError):
            raise FilterSpecError(
                f"{key} {num!r} is not a number; use e.g. `--{key.replace('_', '-')} 3` or "
                f"`--{key.replace('_', '-')} accuracy=0.5`"
            ) from None
        if math.isnan(number) or not obj:
            raise FilterSpecError(f"{key}: bad bound {obj}={num!r}")
        out[obj] = number
    return dict(sorted(out.items()))


def _iso(key: str, value: Any) -> str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise FilterSpecError(
                f"{key} {value!r} is not an ISO 8601 time; use e.g. 2026-11-01 or 2026-11-01T10:00:00Z"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def load_toml(path: str) -> dict[str, Any]:
    """Spec keys from a TOML file: top-level keys and/or a synth-ai style `[filter]` table."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise FilterSpecError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise FilterSpecError(f"config file {path} is not valid TOML: {exc}") from exc
    tables = ("min_reward", "max_reward", *_TASK_BOUNDS)
    merged = {k: v for k, v in data.items() if not isinstance(v, dict) or k in tables}
    section = data.get("filter", {})
    if not isinstance(section, dict):
        raise FilterSpecError(f"[filter] in {path} must be a table")
    merged.update(section)
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("filter", *tables):
            raise FilterSpecError(f"unknown table [{key}] in {path}; put keys at top level or under [filter]")
    return merged


# -- SQL --------------------------------------------------------------------------------------


def lit(value: Any) -> str:
    """A SQL literal for a trusted Python value (strings quoted, lists as list literals)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(lit(v) for v in value) + "]::VARCHAR[]" if value else "[]::VARCHAR[]"
    return "'" + str(value).replace("'", "''") + "'"


def _reward_expr(objective: str) -> str:
    if objective == DEFAULT_OBJECTIVE:
        return "s.total_reward"
    return f"s.rewards[{lit(objective)}]"


def session_predicates(spec: SnapshotSpec) -> list[tuple[str, str]]:
    """(reason, predicate over the `sessions` view as `s`) for each active filter, in order."""
    preds: list[tuple[str, str]] = []

    def member(reason: str, column: str, values: tuple[str, ...]) -> None:
        if values:
            preds.append((reason, f"coalesce(list_contains({lit(values)}, s.{column}), false)"))

    if spec.exclude_task_ids:  # first, so every decontaminated session is counted as such
        preds.append(("excluded_task", f"NOT coalesce(list_contains({lit(spec.exclude_task_ids)}, s.task_id), false)"))
    member("splits", "split", spec.splits)
    member("task_ids", "task_id", spec.task_ids)
    member("models", "model", spec.models)
    member("envs", "env_name", spec.envs)
    member("policy_names", "policy_name", spec.policy_names)
    member("run_ids", "run_id", spec.run_ids)
    member("statuses", "status", spec.statuses)
    if spec.require_termination:
        preds.append(("require_termination", "coalesce(s.status = 'terminated', false)"))
    if spec.min_created_at:
        preds.append(("min_created_at", f"coalesce(s.started_at >= TIMESTAMPTZ {lit(spec.min_created_at)}, false)"))
    if spec.max_created_at:
        preds.append(("max_created_at", f"coalesce(s.started_at <= TIMESTAMPTZ {lit(spec.max_created_at)}, false)"))
    member("judgment", "judgment", spec.judgment)
    for objective, bound in spec.min_reward.items():
        preds.append(("min_reward", f"coalesce({_reward_expr(objective)} >= {lit(bound)}, false)"))
    for objective, bound in spec.max_reward.items():
        preds.append(("max_reward", f"coalesce({_reward_expr(objective)} <= {lit(bound)}, false)"))
    if spec.min_achievements is not None:
        preds.append(("min_achievements", f"coalesce(s.achievements_count, 0) >= {int(spec.min_achievements)}"))
    if spec.required_achievements:
        preds.append((
            "required_achievements",
            f"list_has_all(coalesce(s.achievements, []), {lit(spec.required_achievements)})",
        ))
    if spec.max_turns is not None:
        preds.append(("max_turns", f"coalesce(s.num_turns, s.turns_received, 0) <= {int(spec.max_turns)}"))
    if spec.where:
        preds.append(("where", f"coalesce(({spec.where}), false)"))
    return preds
