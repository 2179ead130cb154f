"""`python -m lake sql|stats|compare|snapshot|wait|maintain|ui`: query, inspect, export, maintain and browse the lake."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

__all__ = ["main", "build_parser"]

def _add_spec_arguments(p: argparse.ArgumentParser) -> dict[str, Any]:
    """One flag per SnapshotSpec field, from the field's metadata (lake.spec); returns the groups."""
    from lake.spec import GROUPS, flag_of, spec_fields

    groups = {name: p.add_argument_group(title) for name, title in GROUPS.items()}
    for f in sorted(spec_fields(), key=lambda f: list(GROUPS).index(f.metadata["group"])):  # usage in help's order
        meta, kwargs = f.metadata, {"help": f.metadata["help"]}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("repeatable"):
            kwargs["action"] = "append"
        kind = meta["kind"]
        if kind == "bool":  # None when not given, so --config's value stands
            kwargs.update(action=argparse.BooleanOptionalAction if meta.get("negatable") else "store_true", default=None)
        elif kind in ("int", "float"):
            kwargs["type"] = int if kind == "int" else float
        elif kind == "choice":
            kwargs["choices"] = meta["choices"]
        groups[meta["group"]].add_argument(flag_of(f), dest=_dest(f), **kwargs)
    return groups


def _dest(f: Any) -> str:
    from lake.spec import flag_of

    return flag_of(f)[2:].replace("-", "_")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lake", default=None, help="lake root (default: $LAKE_URI or ./lake)")
    p.add_argument("--reader", choices=("auto", "delta", "arrow"), default="auto",
                   help="Delta reader: DuckDB's delta extension, or deltalake -> Arrow (auto: delta for local lakes)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    from schemas.cli import EXIT_STATUS

    parser = argparse.ArgumentParser(prog="python -m lake", description=__doc__, epilog=EXIT_STATUS)
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
    groups = _add_spec_arguments(p)
    groups["decontamination"].add_argument(
        "--disjoint-from", metavar="MANIFEST", action="append",
        help="refuse (exit 2) if any kept task_id is in the val split of that snapshot")
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
    for command in sub.choices.values():
        command.epilog = EXIT_STATUS
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
    from lake.spec import SnapshotSpec, load_toml, spec_fields

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
    for f in spec_fields():  # flags override the file's keys
        value = getattr(args, _dest(f))
        if value is not None:
            from_flag = f.metadata.get("from_flag")
            data[f.name] = from_flag(value, data.get(f.name)) if from_flag else value
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
        from lake.spec import flag_of, spec_fields

        given = [flag_of(f) for f in spec_fields() if getattr(args, _dest(f)) is not None]
        given += ["--disjoint-from"] if args.disjoint_from is not None else []
        if given or args.config:
            raise FilterSpecError(
                "--from-manifest reproduces a snapshot exactly; drop --config and the filter flags "
                f"({', '.join(given) or '--config'})"
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
    from lake.export import build_snapshot

    manifest = build_snapshot(lake_uri, spec, out, force=args.force, reader=args.reader,
                              memory_limit=args.memory_limit, threads=args.threads, progress=args.progress,
                              exclude_sources=args.exclude_tasks_from, disjoint_from=args.disjoint_from,
                              allow_empty=args.allow_empty)
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
    said = wait_until(check, timeout_s=args.timeout, on_progress=say)
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
    from schemas.cli import run_cli

    return run_cli(_main, argv)


def _main(argv: list[str]) -> int:
    from schemas.extras import require

    args = build_parser().parse_args(argv)
    require("lake", what=f"`python -m lake {args.command}`")
    return args.func(args)
