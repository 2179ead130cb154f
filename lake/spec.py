"""The snapshot spec: which sessions to keep and how to shape them, from flags or TOML.

Each field's metadata is the one place a key is described: its flag (`--min-reward` <->
`min_reward`), help, metavar, kind (how a value is read and checked) and synth-ai's db-less
filter key when it has one. `python -m lake snapshot` builds its flags from it, TOML and
manifests are read with it, and the UI renders a spec back into flags with `to_flags`.
Every session filter becomes one SQL predicate tagged with the reason a session fails it, so
a snapshot can count what it dropped and why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from lake.exceptions import FilterSpecError

__all__ = ["SnapshotSpec", "load_toml", "session_predicates", "spec_fields", "to_flags", "SYNTH_AI_ALIASES"]

DEFAULT_OBJECTIVE = "reward"
# The CLI's argument groups and their titles, in --help order.
GROUPS = {
    "filters": "filters (each drops sessions; reasons are counted in the manifest)",
    "task groups": "task groups (statistics over the sessions the filters above keep; see the task_stats view)",
    "decontamination": "decontamination",
    "shape": "shape",
}
# How a value is read: `bounds` ({objective: number} from X, OBJ=X, lists or a table), `names`
# (a set of strings, from a list or "a,b"), `int`, `float`, `bool`, `time` (ISO 8601), `text`,
# `choice`, `turns` (an int or "all").
KINDS = ("bounds", "names", "int", "float", "bool", "time", "text", "choice", "turns")


def _option(kind: str, help: str, *, default: Any = None, group: str = "filters", **meta: Any) -> Any:
    """A spec field and its metadata: kind, help, group, and optionally `flag` (default
    --field-name), `metavar`, `choices`, `aliases` (other TOML keys), `minimum`, `repeatable`,
    `negatable` (--x/--no-x) and `from_flag` (turns the flag's values into the field's value)."""
    assert kind in KINDS and group in GROUPS, (kind, group)
    metadata = {"kind": kind, "help": help, "group": group, **meta}
    if kind == "bounds":
        return field(default_factory=dict, metadata={"repeatable": True, "metavar": "[OBJ=]X", **metadata})
    if kind == "names":
        return field(default=(), metadata=metadata)
    return field(default=default, metadata=metadata)


def _excluded_task_ids(sources: list[str], given: Iterable[str] | None) -> list[str]:
    """--exclude-tasks-from FILE|MANIFEST ...: the union of their task_ids and the TOML's."""
    from lake.decontam import task_ids_from

    excluded = set(given.split(",") if isinstance(given, str) else given or ())
    for source in sources:
        excluded |= task_ids_from(source)
    return sorted(excluded)


@dataclass(frozen=True)
class SnapshotSpec:
    """Everything that decides a snapshot's bytes; recorded whole in manifest.json.

    Field order is the manifest's key order and the --help order within a group.
    """

    min_reward: dict[str, float] = _option(
        "bounds", "total_reward >= X (objective 'reward'), or OBJ=X for another objective; repeatable",
        aliases=("min_official_score",))
    max_reward: dict[str, float] = _option("bounds", "total_reward <= X; like --min-reward",
                                           aliases=("max_official_score",))
    min_achievements: int | None = _option("int", "achievements_count >= N", minimum=0)
    required_achievements: tuple[str, ...] = _option("names", "sessions holding all of these achievements",
                                                     metavar="A,B")
    max_turns: int | None = _option("int", "num_turns <= N", minimum=0)
    require_termination: bool = _option("bool", "status 'terminated' only (no truncated/error/abandoned/open)",
                                        default=False)
    statuses: tuple[str, ...] = _option("names", "status in this list", metavar="S,T")
    splits: tuple[str, ...] = _option("names", "split in this list, e.g. train,test", metavar="S,T")
    task_ids: tuple[str, ...] = _option("names", "task_id in this list", metavar="A,B")
    models: tuple[str, ...] = _option("names", "model in this list", metavar="A,B")
    envs: tuple[str, ...] = _option("names", "env_name in this list", metavar="A,B", aliases=("env_names",))
    policy_names: tuple[str, ...] = _option("names", "policy_name in this list", metavar="A,B",
                                            aliases=("policies",))
    run_ids: tuple[str, ...] = _option("names", "run_id in this list", metavar="A,B")
    min_created_at: str | None = _option("time", "started_at >= this time (UTC if no offset)", metavar="ISO")
    max_created_at: str | None = _option("time", "started_at <= this time", metavar="ISO")
    judgment: tuple[str, ...] = _option("names", "latest judgment label in this list, e.g. acceptable",
                                        metavar="L,M")
    where: str | None = _option("text", "extra SQL predicate over the `sessions` view's columns", metavar="SQL")
    limit: int | None = _option("int", "keep at most N sessions (the first in snapshot order)", minimum=0)
    best_per_task: bool = _option(
        "bool", "one session per task_id: highest reward, then most achievements, fewest turns, session_id",
        default=False, group="shape")
    salvage: bool = _option("bool", "keep a session with an invalid or missing turn, truncated before the first one",
                            default=False, group="shape")
    granularity: str = _option("choice", "one example per session (default) or per assistant turn",
                               default="session", group="shape", choices=("session", "turn"))
    context_turns: int | None = _option("turns", "turn granularity: previous turns included (default 0)",
                                        default=0, group="shape", metavar="N|all", minimum=0)
    format: str = _option("choice", "line shape (default messages); preference: prompt/chosen/rejected pairs for DPO",
                          default="messages", group="shape", choices=("messages", "prompt_completion", "preference"),
                          value_aliases={"conversational": "messages"})
    include_system: bool = _option("bool", "keep system/developer messages (default yes; identical repeats kept once)",
                                   default=True, group="shape", negatable=True)
    val_fraction: float = _option("float", "share of task_ids hashed into val.jsonl (default 0)",
                                  default=0.0, group="shape")
    split_seed: int = _option("int", "seed of the train/val hash (default 0)", default=0, group="shape")
    # Group statistics over the sessions that pass the filters above, per task_id and objective.
    min_task_std: dict[str, float] = _option(
        "bounds", "drop tasks whose reward std is below X (0 < X drops zero-variance groups, useless for GRPO)",
        group="task groups")
    max_task_mean: dict[str, float] = _option("bounds", "keep tasks with mean reward <= X (hard ones)",
                                              group="task groups")
    min_task_mean: dict[str, float] = _option("bounds", "keep tasks with mean reward >= X", group="task groups")
    top_k_per_task: int | None = _option(
        "int", "the best K sessions per task_id (ranked like --best-per-task, which is K=1)",
        group="task groups", metavar="K", minimum=1)
    # Decontamination: these task_ids never reach the output.
    exclude_task_ids: tuple[str, ...] = _option(
        "names", "never output these task_ids: a file with one per line (or a JSON list), or a snapshot's "
        "manifest.json/dir (its val split's task_ids); the manifest records the set's sha256",
        group="decontamination", flag="--exclude-tasks-from", metavar="FILE|MANIFEST", repeatable=True,
        from_flag=_excluded_task_ids)
    # format "preference": chosen and rejected rewards differ by at least this much (and > 0).
    min_margin: float = _option(
        "float", "preference: chosen and rejected rewards differ by at least X (default: any difference)",
        default=0.0, group="shape", metavar="X", minimum=0)
    # Invalid or zero-reward assistant turns stay as context with "weight": 0 (no loss).
    mask_invalid_turns: bool = _option(
        "bool", 'keep invalid or zero-reward assistant turns as context, marked "weight": 0 (no loss)',
        default=False, group="shape")

    # -- building -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnapshotSpec:
        """Validate and normalise a mapping of spec keys (TOML, flags or a manifest's spec)."""
        fields = {f.name: f for f in spec_fields()}
        values: dict[str, Any] = {}
        for raw_key, value in data.items():
            key = _ALIASES.get(raw_key, raw_key).replace("-", "_")
            if key == "db":
                raise FilterSpecError(
                    "`db` is not used: the lake replaces the trace database; set LAKE_URI or --lake"
                )
            if key not in fields:
                raise FilterSpecError(
                    f"unknown filter key `{raw_key}`; valid keys are: {', '.join(sorted(fields))}"
                )
            if value is None:
                continue
            values[key] = _normalise(fields[key], value)
        spec = cls(**values)
        spec._check()
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The full spec as plain JSON-able values, every key present (defaults included)."""
        out = dataclasses.asdict(self)
        for f in spec_fields():
            if f.metadata["kind"] == "names":
                out[f.name] = list(out[f.name])
        return out

    def _check(self) -> None:
        for f in spec_fields():
            value, meta = getattr(self, f.name), f.metadata
            if meta["kind"] == "choice" and value not in meta["choices"]:
                raise FilterSpecError(f"{f.name} {value!r} is not one of {', '.join(meta['choices'])}")
            minimum = meta.get("minimum")
            if minimum is not None and value is not None and (value < minimum or math.isnan(value)):
                raise FilterSpecError(f"{f.name} {value} must be >= {minimum}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise FilterSpecError(f"val_fraction {self.val_fraction} must be in [0, 1)")
        if self.format == "preference" and (self.best_per_task or self.top_k_per_task is not None):
            raise FilterSpecError(
                "format preference pairs the rollouts of a task; drop --best-per-task/--top-k-per-task, "
                "they would leave nothing to pair"
            )


for _field in dataclasses.fields(SnapshotSpec):
    if "kind" not in _field.metadata:  # fail at import, not with a KeyError in the middle of a snapshot
        raise TypeError(f"SnapshotSpec.{_field.name}: declare it with _option(...) so flags and TOML can set it")


def spec_fields() -> tuple[dataclasses.Field, ...]:
    """SnapshotSpec's fields, each with its CLI/TOML metadata."""
    return dataclasses.fields(SnapshotSpec)


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of a spec field (`min_reward` -> `--min-reward`)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


# Other TOML keys -> ours: synth-ai's `[filter]` keys among them (`output` is the CLI's `out`).
_ALIASES = {alias: f.name for f in spec_fields() for alias in f.metadata.get("aliases", ())}
SYNTH_AI_ALIASES = {**_ALIASES, "output": "out"}


def to_flags(spec: SnapshotSpec, keys: Iterable[str] | None = None) -> list[str]:
    """The command-line flags that make `spec` (only its non-default values), for `keys` or all.

    Fields set from files (`--exclude-tasks-from`) have no value to print and are left out.
    """
    fields = {f.name: f for f in spec_fields()}
    default = SnapshotSpec()
    argv: list[str] = []
    for key in fields if keys is None else keys:
        f = fields[key]
        value, kind, flag = getattr(spec, key), f.metadata["kind"], flag_of(f)
        if value == getattr(default, key) or "from_flag" in f.metadata:
            continue
        if kind == "bounds":
            for objective, bound in value.items():
                argv += [flag, _number(bound) if objective == DEFAULT_OBJECTIVE else f"{objective}={_number(bound)}"]
        elif kind == "names":
            argv += [flag, ",".join(value)]
        elif kind == "bool":
            argv += [flag if value else "--no-" + flag[2:]]
        elif kind == "turns" and value is None:
            argv += [flag, "all"]
        else:
            argv += [flag, _number(value) if isinstance(value, float) else str(value)]
    return argv


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _normalise(f: dataclasses.Field, value: Any) -> Any:
    key, kind = f.name, f.metadata["kind"]
    try:
        return _READERS[kind](key, value, f.metadata)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FilterSpecError):
            raise
        raise FilterSpecError(f"{key}: {exc}") from exc


def _names(key: str, value: Any, _meta: Mapping[str, Any]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)):
        raise FilterSpecError(f"{key} must be a list of strings, got {value!r}")
    return tuple(sorted({str(v).strip() for v in value if str(v).strip()}))


def _bool(key: str, value: Any, _meta: Mapping[str, Any]) -> bool:
    if not isinstance(value, bool):
        raise FilterSpecError(f"{key} must be true or false, got {value!r}")
    return value


def _turns(key: str, value: Any, meta: Mapping[str, Any]) -> int | None:
    if isinstance(value, str) and value.lower() == "all":
        return None
    return _int(key, value, meta)


def _choice(key: str, value: Any, meta: Mapping[str, Any]) -> Any:
    return meta.get("value_aliases", {}).get(value, value)


def _int(key: str, value: Any, _meta: Mapping[str, Any] | None = None) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise FilterSpecError(f"{key} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise FilterSpecError(f"{key} must be an integer, got {value!r}") from None


def _bounds(key: str, value: Any, _meta: Mapping[str, Any] | None = None) -> dict[str, float]:
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


def _iso(key: str, value: Any, _meta: Mapping[str, Any] | None = None) -> str:
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


_READERS: dict[str, Callable[[str, Any, Mapping[str, Any]], Any]] = {
    "bounds": _bounds,
    "names": _names,
    "int": _int,
    "float": lambda key, value, meta: float(value),
    "bool": _bool,
    "time": _iso,
    "text": lambda key, value, meta: str(value).strip() or None,
    "choice": _choice,
    "turns": _turns,
}


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
    tables = tuple(key for f in spec_fields() if f.metadata["kind"] == "bounds"
                   for key in (f.name, *f.metadata.get("aliases", ())))
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
