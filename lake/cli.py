"""`python -m lake sql|stats|compare|snapshot|wait|maintain|ui`: query, inspect, export, maintain and browse the lake."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

__all__ = ["main", "build_parser"]

# Snapshot flags that feed the spec: dest -> how argparse reads it (TOML keys are the dests).
_SPEC_DESTS = (
    "min_reward", "max_reward", "min_achievements", "required_achievements", "max_turns",
    "require_termination", "statuses", "splits", "task_ids", "models", "envs", "policy_names",
    "run_ids", "min_created_at", "max_created_at", "judgment", "where", "limit", "best_per_task",
    "salvage", "granularity", "context_turns", "format", "include_system", "val_fraction",
    "split_seed", "min_task_std", "max_task_mean", "min_task_mean", "top_k_per_task", "min_margin",
    "mask_invalid_turns",
)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lake", default=None, help="lake root (default: $LAKE_URI or ./lake)")
    p.add_argument("--reader", choices=("auto", "delta", "arrow"), default="auto",
                   help="Delta reader: DuckDB's delta extension, or deltalake -> Arrow (auto: delta for local lakes)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lake", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sql", help="read-only SQL over the lake's views")
    p.add_argument("query", help='one SELECT, e.g. "SELECT status, count(*) FROM sessions GROUP BY 1"')
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--max-rows", type=int, default=1000, help="rows shown by --format table (default 1000)")
    _add_common(p)
    p.set_defaults(func=_sql)

    p = sub.add_parser("stats", help="overview: sessions, rewards, achievements, messages, dead letters")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--plots", metavar="DIR", default=None, help="also write PNG charts to DIR")
    p.add_argument("--top", type=int, default=20, help="rows per breakdown (default 20)")
    _add_common(p)
    p.set_defaults(func=_stats)

    p = sub.add_parser("compare", help="experiments: reward, achievements, valid tool calls per model/run, 95%% CIs")
    p.add_argument("--by", default="model,run_id", help="session columns to group by (default model,run_id)")
    p.add_argument("--where", default=None, metavar="SQL", help="predicate over the `sessions` view")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    _add_common(p)
    p.set_defaults(func=_compare)

    p = sub.add_parser("snapshot", help="filtered, reproducible JSONL SFT snapshot + manifest")
    p.add_argument("--out", default=None, help="output directory (must be empty unless --force)")
    p.add_argument("--config", default=None, metavar="TOML", help="filter.toml; flags override its keys")
    p.add_argument("--from-manifest", default=None, metavar="FILE",
                   help="reproduce the snapshot of FILE (same table versions and spec), byte for byte")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.add_argument("--allow-empty", action="store_true",
                   help="write a snapshot even when the filters keep nothing (default: exit 1 with the reasons)")
    p.add_argument("--dry-run", action="store_true", help="print counts kept/dropped; write nothing")
    p.add_argument("--stats-only", action="store_true", help="print the snapshot's stats; write nothing")
    p.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit, spills beyond (default 1GB)")
    p.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal)")
    f = p.add_argument_group("filters (each drops sessions; reasons are counted in the manifest)")
    f.add_argument("--min-reward", action="append", metavar="[OBJ=]X",
                   help="total_reward >= X (objective 'reward'), or OBJ=X for another objective; repeatable")
    f.add_argument("--max-reward", action="append", metavar="[OBJ=]X", help="total_reward <= X; like --min-reward")
    f.add_argument("--min-achievements", type=int, help="achievements_count >= N")
    f.add_argument("--required-achievements", metavar="A,B", help="sessions holding all of these achievements")
    f.add_argument("--max-turns", type=int, help="num_turns <= N")
    f.add_argument("--require-termination", action="store_true", default=None,
                   help="status 'terminated' only (no truncated/error/abandoned/open)")
    f.add_argument("--statuses", metavar="S,T", help="status in this list")
    f.add_argument("--splits", metavar="S,T", help="split in this list, e.g. train,test")
    f.add_argument("--task-ids", metavar="A,B", help="task_id in this list")
    f.add_argument("--models", metavar="A,B", help="model in this list")
    f.add_argument("--envs", metavar="A,B", help="env_name in this list")
    f.add_argument("--policy-names", metavar="A,B", help="policy_name in this list")
    f.add_argument("--run-ids", metavar="A,B", help="run_id in this list")
    f.add_argument("--min-created-at", metavar="ISO", help="started_at >= this time (UTC if no offset)")
    f.add_argument("--max-created-at", metavar="ISO", help="started_at <= this time")
    f.add_argument("--judgment", metavar="L,M", help="latest judgment label in this list, e.g. acceptable")
    f.add_argument("--where", metavar="SQL", help="extra SQL predicate over the `sessions` view's columns")
    f.add_argument("--limit", type=int, help="keep at most N sessions (the first in snapshot order)")
    g = p.add_argument_group("task groups (statistics over the sessions the filters above keep; see the task_stats view)")
    g.add_argument("--min-task-std", metavar="[OBJ=]X", action="append",
                   help="drop tasks whose reward std is below X (0 < X drops zero-variance groups, useless for GRPO)")
    g.add_argument("--max-task-mean", metavar="[OBJ=]X", action="append", help="keep tasks with mean reward <= X (hard ones)")
    g.add_argument("--min-task-mean", metavar="[OBJ=]X", action="append", help="keep tasks with mean reward >= X")
    g.add_argument("--top-k-per-task", type=int, metavar="K",
                   help="the best K sessions per task_id (ranked like --best-per-task, which is K=1)")
    d = p.add_argument_group("decontamination")
    d.add_argument("--exclude-tasks-from", metavar="FILE|MANIFEST", action="append",
                   help="never output these task_ids: a file with one per line (or a JSON list), or a snapshot's "
                        "manifest.json/dir (its val split's task_ids); the manifest records the set's sha256")
    d.add_argument("--disjoint-from", metavar="MANIFEST", action="append",
                   help="refuse (exit 2) if any kept task_id is in the val split of that snapshot")
    o = p.add_argument_group("shape")
    o.add_argument("--best-per-task", action="store_true", default=None,
                   help="one session per task_id: highest reward, then most achievements, fewest turns, session_id")
    o.add_argument("--salvage", action="store_true", default=None,
                   help="keep a session with an invalid or missing turn, truncated before the first one")
    o.add_argument("--granularity", choices=("session", "turn"), help="one example per session (default) or per assistant turn")
    o.add_argument("--context-turns", metavar="N|all", help="turn granularity: previous turns included (default 0)")
    o.add_argument("--format", choices=("messages", "prompt_completion", "preference"),
                   help="line shape (default messages); preference: prompt/chosen/rejected pairs for DPO")
    o.add_argument("--min-margin", type=float, metavar="X",
                   help="preference: chosen and rejected rewards differ by at least X (default: any difference)")
    o.add_argument("--mask-invalid-turns", action="store_true", default=None,
                   help='keep invalid or zero-reward assistant turns as context, marked "weight": 0 (no loss)')
    o.add_argument("--include-system", action=argparse.BooleanOptionalAction, default=None,
                   help="keep system/developer messages (default yes; identical repeats kept once)")
    o.add_argument("--val-fraction", type=float, help="share of task_ids hashed into val.jsonl (default 0)")
    o.add_argument("--split-seed", type=int, help="seed of the train/val hash (default 0)")
    _add_common(p)
    p.set_defaults(func=_snapshot)

    p = sub.add_parser("wait", help="block until what was published is queryable (for scripts)")
    w = p.add_mutually_exclusive_group(required=True)
    w.add_argument("--sessions", type=int, metavar="N",
                   help="until at least N sessions have ended with all their turns in the lake")
    w.add_argument("--until-offset-caught-up", action="store_true",
                   help="until the lake holds every record now in the topic (every partition's last offset)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="give up after S seconds, exit 1 (default 120)")
    p.add_argument("--topic", default=None, help="topic (default: $ROLLOUT_TOPIC or rollout-events)")
    p.add_argument("--bootstrap-servers", default=None, help="broker (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    _add_common(p)
    p.set_defaults(func=_wait)

    p = sub.add_parser("maintain", help="compact, checkpoint and vacuum every table")
    p.add_argument("--tables", default=None, metavar="A,B", help="only these tables")
    p.add_argument("--retention-hours", type=float, default=None, help="vacuum retention (default 168 = 7 days)")
    p.add_argument("--no-compact", action="store_true")
    p.add_argument("--no-checkpoint", action="store_true")
    p.add_argument("--no-vacuum", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="list what vacuum would delete; change nothing")
    p.add_argument("--force", action="store_true", help="allow a retention under 7 days")
    p.add_argument("--format", choices=("table", "json"), default="table")
    _add_common(p)
    p.set_defaults(func=_maintain)

    p = sub.add_parser("ui", help="read-only web pages over the lake: sessions, turns, runs chart, tasks, dead letters")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only; another address exposes the lake)")
    _add_common(p)
    p.set_defaults(func=_ui)
    return parser


def _lake_uri(args: argparse.Namespace) -> str:
    if args.lake:
        return args.lake
    from lake.settings import LakeSettings

    return LakeSettings().lake_uri


# -- sql ------------------------------------------------------------------------------------


def _sql(args: argparse.Namespace) -> int:
    from lake.reader import connect

    with connect(_lake_uri(args), reader=args.reader) as lake:
        result = lake.read_only_query(args.query)
        table = result.arrow()
        table = table.read_all() if hasattr(table, "read_all") else table
    rows = _rows(table)
    if args.format == "json":
        sys.stdout.write(json.dumps(rows, default=_json_default, ensure_ascii=False) + "\n")
    elif args.format == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(table.column_names)
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row.values()])
    else:
        from rich.console import Console
        from rich.table import Table

        view = Table(show_lines=False)
        for name in table.column_names:
            view.add_column(name)
        rows = rows[: args.max_rows]
        for row in rows:
            view.add_row(*["NULL" if v is None else _csv_cell(v) for v in row.values()])
        console = Console()
        console.print(view)
        more = f" (showing {len(rows)})" if table.num_rows > len(rows) else ""
        console.print(f"{table.num_rows} rows{more}")
    return 0


def _rows(table: Any) -> list[dict[str, Any]]:
    """Row dicts, with MAP columns as JSON objects rather than Arrow's key/value pairs."""
    import pyarrow as pa

    rows = table.to_pylist()
    maps = [f.name for f in table.schema if pa.types.is_map(f.type)]
    for row in rows:
        for name in maps:
            if row[name] is not None:
                row[name] = {str(k): v for k, v in row[name]}
    return rows


def _json_default(value: Any) -> Any:
    import base64
    import datetime as dt
    import decimal

    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    if isinstance(value, (bytes, bytearray)):
        return _json_default(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


# -- stats ----------------------------------------------------------------------------------


def _stats(args: argparse.Namespace) -> int:
    from lake.reader import connect
    from lake.stats import lake_overview, print_overview, write_plots

    with connect(_lake_uri(args), reader=args.reader) as lake:
        overview = lake_overview(lake, top=args.top)
    if args.format == "json":
        print(json.dumps(overview, default=_json_default, indent=2))
    else:
        print_overview(overview)
    if args.plots:
        written = write_plots(overview, args.plots)
        print(f"wrote {len(written)} plots to {args.plots}", file=sys.stderr)
    return 0


# -- compare --------------------------------------------------------------------------------


def _compare(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from lake.compare import compare_runs
    from lake.reader import connect

    with connect(_lake_uri(args), reader=args.reader) as lake:
        rows = compare_runs(lake, by=tuple(c.strip() for c in args.by.split(",") if c.strip()), where=args.where)
    if args.format == "json":
        sys.stdout.write(json.dumps(rows, default=_json_default) + "\n")
        return 0
    if args.format == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(rows[0].keys() if rows else [])
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row.values()])
        return 0
    from rich.console import Console
    from rich.table import Table

    view = Table(title="experiments (mean ± 95% CI)")
    groups = [c for c in rows[0] if c not in _COMPARE_METRICS] if rows else []
    for name in [*groups, "sessions", "reward", "achievements", "valid tool calls", "turns"]:
        view.add_column(name)
    for r in rows:
        view.add_row(
            *[str(r[g]) for g in groups], str(r["sessions"]),
            _mean_ci(r["reward_mean"], r["reward_ci95"]), _mean_ci(r["achievements_mean"], r["achievements_ci95"]),
            _mean_ci(r["valid_tool_call_rate"], r["valid_tool_call_rate_ci95"]),
            "-" if r["turns_mean"] is None else f"{r['turns_mean']:.1f}",
        )
    Console().print(view)
    return 0


_COMPARE_METRICS = {
    "sessions", "reward_mean", "reward_std", "reward_ci95", "achievements_mean", "achievements_std",
    "achievements_ci95", "valid_tool_call_rate", "valid_tool_call_rate_ci95", "turns_mean",
}


def _mean_ci(mean: float | None, ci: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f}" + ("" if ci is None else f" ± {ci:.2f}")


# -- snapshot -------------------------------------------------------------------------------


# Keys only synth-ai's `filter` TOML has: such a file gets synth-ai's example shape by default.
_SYNTH_AI_KEYS = {"db", "output", "min_official_score", "max_official_score"}
_SYNTH_AI_SHAPE = {"granularity": "turn", "context_turns": 0, "include_system": False}


def _spec_from_args(args: argparse.Namespace) -> Any:
    from lake.spec import SnapshotSpec, load_toml

    data: dict[str, Any] = {}
    out_from_config = None
    if args.config:
        data.update(load_toml(args.config))
        if _SYNTH_AI_KEYS & data.keys():
            # synth-ai writes one example per user -> assistant pair, without the system prompt.
            for key, value in _SYNTH_AI_SHAPE.items():
                data.setdefault(key, value)
        if "db" in data:
            print(f"note: ignoring `db = {data.pop('db')!r}` in {args.config}: the lake at LAKE_URI "
                  f"({_lake_uri(args)}) holds the traces (import a database once with "
                  "`python -m streams replay sqlite DB`)", file=sys.stderr)
        out_from_config = _out_dir(data.pop("out", None), data.pop("output", None))
    flags = {dest: getattr(args, dest) for dest in _SPEC_DESTS if getattr(args, dest) is not None}
    data.update(flags)
    if args.exclude_tasks_from:
        from lake.decontam import task_ids_from

        excluded = set(data.get("exclude_task_ids") or ())
        for source in args.exclude_tasks_from:
            excluded |= task_ids_from(source)
        data["exclude_task_ids"] = sorted(excluded)
    return SnapshotSpec.from_dict(data), out_from_config


def _out_dir(out: Any, output: Any) -> str | None:
    """`out` names a directory; synth-ai's `output` names a .jsonl file, whose stem becomes the directory."""
    if out or not output:
        return out
    path = str(output)
    if path.endswith(".jsonl"):
        folder = path.removesuffix(".jsonl")
        print(f"note: writing the snapshot to {folder}/ for `output = {path!r}` "
              f"({folder}/train.jsonl holds the examples)", file=sys.stderr)
        return folder
    return path


def _snapshot(args: argparse.Namespace) -> int:
    from lake.exceptions import FilterSpecError

    lake_arg = args.lake
    if args.from_manifest:
        given = [d for d in (*_SPEC_DESTS, "exclude_tasks_from", "disjoint_from") if getattr(args, d) is not None]
        if given or args.config:
            raise FilterSpecError(
                "--from-manifest reproduces a snapshot exactly; drop --config and the filter flags "
                f"({', '.join('--' + d.replace('_', '-') for d in given) or '--config'})"
            )
        return _reproduce(args)
    spec, out_from_config = _spec_from_args(args)
    out = args.out or out_from_config
    lake_uri = lake_arg or _lake_uri(args)
    if args.dry_run or args.stats_only:
        from lake.export import plan_snapshot
        from lake.reader import connect

        with connect(lake_uri, reader=args.reader, memory_limit=args.memory_limit, threads=args.threads) as lake:
            plan = plan_snapshot(lake, spec, with_stats=args.stats_only)
            plan["table_versions"] = dict(lake.versions)
        plan["spec"] = spec.to_dict()
        print(json.dumps(plan if args.stats_only else {k: plan[k] for k in ("table_versions", "spec", "counts")},
                         indent=2, default=_json_default))
        return 0
    if not out:
        raise FilterSpecError("--out DIR is required (or `output`/`out` in --config), unless --dry-run/--stats-only")
    from lake.exceptions import EmptySnapshotError
    from lake.export import build_snapshot

    try:
        manifest = build_snapshot(lake_uri, spec, out, force=args.force, reader=args.reader,
                                  memory_limit=args.memory_limit, threads=args.threads, progress=args.progress,
                                  exclude_sources=args.exclude_tasks_from, disjoint_from=args.disjoint_from,
                                  allow_empty=args.allow_empty)
    except EmptySnapshotError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _print_done(manifest, out)
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from lake.exceptions import FilterSpecError
    from lake.export import reproduce_snapshot

    if not args.out:
        raise FilterSpecError("--out DIR is required with --from-manifest")
    manifest = reproduce_snapshot(args.from_manifest, args.out, lake_uri=args.lake, force=args.force,
                                  reader=args.reader, memory_limit=args.memory_limit, threads=args.threads,
                                  progress=args.progress)
    _print_done(manifest, args.out)
    print("reproduction matches the manifest's sha256 sums", file=sys.stderr)
    return 0


def _print_done(manifest: dict[str, Any], out: str) -> None:
    c = manifest["counts"]
    dropped = ", ".join(f"{k} {v}" for k, v in c["dropped"].items()) or "none"
    print(
        f"wrote {c['examples']['train']} train + {c['examples']['val']} val examples "
        f"({c['messages']} messages) from {c['sessions_kept']}/{c['sessions_total']} sessions to {out}; "
        f"dropped: {dropped}",
        file=sys.stderr,
    )


# -- wait -----------------------------------------------------------------------------------


def _wait(args: argparse.Namespace) -> int:
    from lake.wait import app_id_prefix, ended_sessions, lake_offsets, log_last_offsets, wait_until

    lake_uri = _lake_uri(args)
    say = None if args.quiet else (lambda line: print(f"waiting: {line}", file=sys.stderr, flush=True))
    started = time.monotonic()
    if args.sessions is not None:
        def check() -> tuple[bool, str]:
            n = ended_sessions(lake_uri, reader=args.reader)
            return n >= args.sessions, f"{n}/{args.sessions} sessions ended with all turns in {lake_uri}"
    else:
        from lake.settings import LakeSettings
        from schemas.kafka import KafkaSettings

        kafka = KafkaSettings()
        topic = args.topic or kafka.rollout_topic
        bootstrap = args.bootstrap_servers or kafka.kafka_bootstrap_servers
        target = log_last_offsets(bootstrap, topic, client_kwargs=kafka.aiokafka_kwargs(),
                                  timeout_s=min(args.timeout, 30.0))
        app_id = app_id_prefix(LakeSettings().topic_epoch)

        def check() -> tuple[bool, str]:
            have = lake_offsets(lake_uri, topic, sorted(target), app_id=app_id)
            behind = {p: target[p] - have[p] for p in target if have[p] < target[p]}
            total = sum(o + 1 for o in target.values())
            if not behind:
                return True, f"lake holds all {total} records of {topic} (offsets {_offsets(target)})"
            return False, (f"{sum(behind.values())} of {total} records of {topic} not in {lake_uri} yet "
                           f"(lake {_offsets(have)}, log {_offsets(target)})")
    from lake.exceptions import WaitTimeoutError

    try:
        said = wait_until(check, timeout_s=args.timeout, on_progress=say)
    except WaitTimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{said} ({time.monotonic() - started:.1f} s)", file=sys.stderr)
    return 0


def _offsets(offsets: dict[int, int]) -> str:
    return " ".join(f"p{p}:{o}" for p, o in sorted(offsets.items()))


# -- maintain -------------------------------------------------------------------------------


def _maintain(args: argparse.Namespace) -> int:
    from lake.maintain import DEFAULT_RETENTION_HOURS, maintain

    report = maintain(
        _lake_uri(args),
        tables=args.tables.split(",") if args.tables else None,
        retention_hours=DEFAULT_RETENTION_HOURS if args.retention_hours is None else args.retention_hours,
        compact=not args.no_compact,
        checkpoint=not args.no_checkpoint,
        vacuum=not args.no_vacuum,
        dry_run=args.dry_run,
        allow_short_retention=args.force,
    )
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in report], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="lake maintain" + (" (dry run)" if args.dry_run else ""), title_justify="left")
        for col in ("table", "version", "files", "compacted", "checkpoint", "vacuumed", "errors"):
            table.add_column(col)
        for r in report:
            table.add_row(
                r.table, f"{r.version_before} -> {r.version_after}", f"{r.files_before} -> {r.files_after}",
                f"-{r.compacted_removed} +{r.compacted_added}", "-" if r.checkpoint_version is None else str(r.checkpoint_version),
                str(r.vacuumed_files), "; ".join(r.errors) or "-",
            )
        Console().print(table)
    return 1 if any(r.errors for r in report) else 0


# -- ui -------------------------------------------------------------------------------------


def _ui(args: argparse.Namespace) -> int:
    import os

    from lake.reader import is_local
    from lake.ui.server import serve

    lake_uri = _lake_uri(args)
    if is_local(lake_uri):  # the printed snapshot commands then work from any folder
        lake_uri = os.path.abspath(lake_uri.removeprefix("file://"))
    serve(lake_uri, host=args.host, port=args.port, reader=args.reader)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from schemas.exceptions import RolloutLakeError

        if args.debug or not isinstance(exc, RolloutLakeError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
