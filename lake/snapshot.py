"""`lake snapshot`: filtered, reproducible JSONL SFT data with a manifest, streamed batch-wise.

Reproducibility: the manifest records the Delta version of every table read and the full
spec; `--from-manifest` opens exactly those versions (time travel) and rewrites the same
bytes, checked against the recorded sha256 sums. Output order is by session (started_at,
session_id), then turn, then message position.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lake.duck import Lake, connect
from lake.exceptions import EmptySnapshotError, ManifestError, OutputExistsError, ReproductionMismatchError
from lake.filters import SnapshotSpec, session_predicates

from lake.formats import POS_SCALE, concat_bytes, message_json_sql
from lake.selection import kept_stats, select

__all__ = [
    "FILES",
    "MANIFEST",
    "absolute_uri",
    "build_snapshot",
    "code_version",
    "explain_empty",
    "load_manifest",
    "plan_snapshot",
    "reproduce_snapshot",
]

FILES = ("train.jsonl", "val.jsonl", "stats.json")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
DEFAULT_BATCH_ROWS = 131_072


def code_version() -> str:
    """The package version, plus the git commit when run from a checkout."""
    try:
        from importlib.metadata import version

        base = version("rollout-lake")
    except Exception:  # not installed (running from a source tree)
        base = "0+unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{base}+g{sha}" if sha else base


def _rows_sql(spec: SnapshotSpec) -> tuple[str, str, str]:
    """The message rows of every example (CTEs `ex`, `rows`), before rendering."""
    system = "m.role IN ('system', 'developer')"
    if spec.include_system:
        keep_system = f"(NOT {system} OR y.prev_turn IS NULL OR y.prev_turn < e.win_start)"
        sys_join = "LEFT JOIN _snap_sys y ON y.session_id = m.session_id AND y.pos = m.turn * {P} + m.idx_in_turn"
    else:
        keep_system = f"NOT {system}"
        sys_join = ""
    sys_join = sys_join.replace("{P}", str(POS_SCALE))
    if spec.granularity == "turn":
        meta = "substr(k.meta_json, 1, length(k.meta_json) - 1) || ',\"turn\":' || r.ex_turn || '}'"
    else:
        meta = "k.meta_json"
    cols = "m.role, m.content, m.content_is_parts, m.tool_calls, m.tool_call_id, m.name"
    if spec.mask_invalid_turns:
        cols += (", (m.role = 'assistant' AND EXISTS (SELECT 1 FROM _snap_masked x "
                 "WHERE x.session_id = m.session_id AND x.turn = m.turn)) AS no_loss")
    carry = ""
    if spec.include_system and spec.granularity == "turn" and spec.context_turns is not None:
        # No system message inside the window: bring the one in effect (the latest before it).
        carry = f"""
            UNION ALL
            SELECT e.ex_ord, e.session_id, c.turn, c.idx_in_turn, c.pos, e.comp_start, e.end_pos,
                   e.is_val, e.ex_turn, {{cols}}
            FROM _snap_examples e
            ASOF JOIN _snap_sys c ON e.session_id = c.session_id AND e.end_pos >= c.pos
            JOIN raw_messages m ON m.session_id = c.session_id AND m.turn = c.turn
                               AND m.idx_in_turn = c.idx_in_turn
            WHERE c.turn < e.win_start
        """
    rows = f"""
        WITH ex AS (
            SELECT e.*, unnest(range(e.win_start, e.ex_turn + 1)) AS src_turn FROM _snap_examples e
        ),
        rows AS (
            SELECT e.ex_ord, e.session_id, m.turn, m.idx_in_turn,
                   m.turn * {POS_SCALE} + m.idx_in_turn AS pos, e.comp_start, e.end_pos,
                   e.is_val, e.ex_turn, {{cols}}
            FROM ex e
            JOIN raw_messages m ON m.session_id = e.session_id AND m.turn = e.src_turn
            {sys_join}
            WHERE m.turn * {POS_SCALE} + m.idx_in_turn <= e.end_pos AND {keep_system}
            {carry}
        )
    """
    return rows, cols, meta


def first_rows_sql(spec: SnapshotSpec) -> str:
    """The first message position of every example (where its line starts), from small tables.

    The same as min(pos) over the example's rows (see _rows_sql), without a pass over messages:
    the window's first message is always kept (a system message there has no earlier copy inside
    the window), or its first non-system one without system messages; a system message carried
    from before the window comes first when there is one.
    """
    col = "min_pos" if spec.include_system else "min_pos_nonsys"
    first = f"""
        SELECT e.ex_ord, t.{col} AS window_first FROM _snap_examples e
        ASOF JOIN (SELECT session_id, turn, {col} FROM _snap_turn_msgs WHERE {col} IS NOT NULL) t
            ON e.session_id = t.session_id AND t.turn >= e.win_start
    """
    if spec.include_system and spec.granularity == "turn" and spec.context_turns is not None:
        return f"""
            CREATE OR REPLACE TABLE _snap_first AS
            WITH w AS ({first}),
            c AS (SELECT e.ex_ord, c.pos AS carry_pos FROM _snap_examples e
                  ASOF JOIN _snap_sys c ON e.session_id = c.session_id AND e.end_pos >= c.pos
                  WHERE c.turn < e.win_start)
            SELECT w.ex_ord, coalesce(c.carry_pos, w.window_first) AS first_pos
            FROM w LEFT JOIN c ON c.ex_ord = w.ex_ord
        """
    return f"CREATE OR REPLACE TABLE _snap_first AS SELECT ex_ord, window_first AS first_pos FROM ({first})"


def stream_sql(spec: SnapshotSpec) -> str:
    """Pieces of JSONL, one per message row, ordered so that concatenating them gives the lines.

    A piece is the message's JSON with the separator before it ("{\"messages\":[" on a
    line's first message, "," otherwise) and the line's tail after its last message.
    """
    rows, cols, meta = _rows_sql(spec)
    msg = message_json_sql("r", no_loss="r.no_loss" if spec.mask_invalid_turns else None)
    tail = f"""'],"tools":' || k.tools_json || ',"metadata":' || {meta} || '}}' || chr(10)"""
    if spec.format == "prompt_completion":
        head = """CASE WHEN r.pos = f.first_pos THEN '{"prompt":[' ELSE '' END
               || CASE WHEN r.pos = r.comp_start THEN '],"completion":['
                       WHEN r.pos = f.first_pos THEN '' ELSE ',' END"""
    else:
        head = """CASE WHEN r.pos = f.first_pos THEN '{"messages":[' ELSE ',' END"""
    return f"""
        {rows.replace("{cols}", cols)}
        SELECT r.role, r.is_val, r.pos = r.end_pos AS is_last,
               {head} || {msg} || CASE WHEN r.pos = r.end_pos THEN {tail} ELSE '' END AS piece
        FROM rows r
        JOIN _snap_first f ON f.ex_ord = r.ex_ord
        JOIN _snap_kept k ON k.session_id = r.session_id
        ORDER BY r.ex_ord, r.pos
    """


# Up to about this many message rows the pieces come to Python as strings: no pyarrow import
# (0.2 s of a small snapshot's start-up); above, Arrow buffers are written without copies.
SMALL_ROWS = 300_000


def _estimated_rows(lake: Lake) -> float:
    """Message rows the stream will have, from the per-turn summary (windows x messages per turn)."""
    return lake.query("""
        SELECT coalesce(sum(e.ex_turn - e.win_start + 1), 0)
               * (SELECT coalesce(sum(n), 0) / greatest(count(*), 1) FROM _snap_turn_msgs)
        FROM _snap_examples e
    """).fetchone()[0]


def _write_small(result: Any, sinks: Mapping[str, _Sink], roles: dict[str, int], bar: Any, batch_rows: int) -> int:
    """Write the stream's pieces through Python strings; returns the message rows written."""
    messages = 0
    while rows := result.fetchmany(batch_rows):
        parts: dict[bool, list[str]] = {False: [], True: []}
        lines = {False: 0, True: 0}
        for role, is_val, is_last, piece in rows:
            parts[is_val].append(piece)
            lines[is_val] += bool(is_last)
            roles[str(role)] = roles.get(str(role), 0) + 1
        for is_val, name in ((False, "train"), (True, "val")):
            if parts[is_val]:
                sinks[name].write("".join(parts[is_val]).encode(), lines[is_val])
        messages += len(rows)
        if bar is not None:
            bar.update(lines[False] + lines[True])
    return messages


def _write_arrow(result: Any, sinks: Mapping[str, _Sink], roles: dict[str, int], bar: Any, batch_rows: int) -> int:
    """Write the stream's pieces straight from Arrow buffers; returns the message rows written."""
    import pyarrow.compute as pc

    messages = 0
    for batch in result.to_arrow_reader(batch_rows):
        lines = int(pc.sum(batch.column("is_last")).as_py() or 0)
        is_val = batch.column("is_val")
        pieces = batch.column("piece")
        if pc.any(is_val).as_py():
            keep = pc.invert(is_val)
            val_lines = int(pc.sum(pc.and_(batch.column("is_last"), is_val)).as_py() or 0)
            sinks["train"].write(concat_bytes(pieces.filter(keep)), lines - val_lines)
            sinks["val"].write(concat_bytes(pieces.filter(is_val)), val_lines)
        else:
            sinks["train"].write(concat_bytes(pieces), lines)
        messages += batch.num_rows
        for item in pc.value_counts(batch.column("role")).to_pylist():
            roles[str(item["values"])] = roles.get(str(item["values"]), 0) + int(item["counts"])
        if bar is not None:
            bar.update(lines)
    return messages


def _prepare_system(lake: Lake, spec: SnapshotSpec) -> None:
    if spec.mask_invalid_turns:
        # The turns whose assistant messages are context only (--mask-invalid-turns).
        lake.query("""
            CREATE OR REPLACE TABLE _snap_masked AS
            SELECT t.session_id, t.turn FROM raw_turns t SEMI JOIN _snap_kept k ON t.session_id = k.session_id
            WHERE t.valid = false OR t.reward = 0
        """)
    if not spec.include_system:
        return
    lake.query(f"""
        CREATE OR REPLACE TABLE _snap_sys AS
        SELECT m.session_id, m.turn, m.idx_in_turn, m.turn * {POS_SCALE} + m.idx_in_turn AS pos,
               lag(m.turn) OVER (PARTITION BY m.session_id, m.role, m.content
                                 ORDER BY m.turn, m.idx_in_turn) AS prev_turn
        FROM raw_messages m SEMI JOIN _snap_kept k ON m.session_id = k.session_id
        WHERE m.role IN ('system', 'developer')
    """)


class _Sink:
    """One output file: written in bulk, hashed as it goes, renamed into place at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.fh = open(self.tmp, "wb")
        self.sha = hashlib.sha256()
        self.bytes = 0
        self.rows = 0

    def write(self, data: memoryview | bytes, rows: int) -> None:
        if len(data):
            self.fh.write(data)
            self.sha.update(data)
            self.bytes += len(data)
        self.rows += rows

    def close(self) -> dict[str, Any]:
        self.fh.close()
        os.replace(self.tmp, self.path)
        return {"sha256": self.sha.hexdigest(), "bytes": self.bytes, "rows": self.rows}


def plan_snapshot(lake: Lake, spec: SnapshotSpec, *, with_stats: bool = False) -> dict[str, Any]:
    """Select sessions and examples without writing; counts (and stats) for --dry-run/--stats-only."""
    result = {"counts": select(lake, spec)}
    if with_stats:
        row = lake.query(f"""
            WITH ex AS (SELECT e.*, unnest(range(e.win_start, e.ex_turn + 1)) AS src_turn
                        FROM _snap_examples e)
            SELECT m.role, count(*) FROM ex e
            JOIN raw_messages m ON m.session_id = e.session_id AND m.turn = e.src_turn
            WHERE m.turn * {POS_SCALE} + m.idx_in_turn <= e.end_pos
              AND ({'true' if spec.include_system else "m.role NOT IN ('system', 'developer')"})
            GROUP BY ALL ORDER BY 1
        """).fetchall()
        roles = {str(r): int(n) for r, n in row}
        result["stats"] = _stats(lake, result["counts"], sum(roles.values()), roles, approx=True)
    return result


def explain_empty(lake: Lake, spec: SnapshotSpec, counts: Mapping[str, Any]) -> str:
    """One line: why a selection kept no example, with what each filter alone drops."""
    total = counts["sessions_total"]
    if total == 0:
        return ("the lake has no sessions yet; is the worker running with this LAKE_URI? "
                "(`python -m lake wait --sessions N` blocks until they land)")
    preds = session_predicates(spec)
    alone = []
    if preds:
        row = lake.query("SELECT " + ", ".join(f"count(*) FILTER (WHERE NOT ({p}))" for _, p in preds)
                         + " FROM sessions s").fetchone()
        alone = [f"{reason} {n}" for (reason, _), n in zip(preds, row)]
    statuses = ", ".join(f"{k} {v}" for k, v in lake.query(
        "SELECT coalesce(status, '(none)'), count(*) FROM sessions GROUP BY 1 ORDER BY 2 DESC, 1").fetchall())
    dropped = ", ".join(f"{k} {v}" for k, v in counts["dropped"].items()) or "none"
    return (f"no examples: kept 0 of {total} sessions (dropped: {dropped}"
            + (f"; each filter alone drops: {', '.join(alone)}" if alone else "")
            + f"; sessions by status: {statuses}). Loosen the filters (`--dry-run` shows the counts) "
            "or pass --allow-empty to write an empty snapshot")


def _stats(lake: Lake, counts: Mapping[str, Any], messages: int, roles: Mapping[str, int],
           *, approx: bool = False) -> dict[str, Any]:
    stats = {
        "sessions": {"total": counts["sessions_total"], "kept": counts["sessions_kept"],
                     "train": counts["sessions_train"], "val": counts["sessions_val"],
                     "dropped": counts["dropped"]},
        "examples": counts["examples"],
        "messages": {"total": messages, "by_role": dict(sorted(roles.items()))},
        "kept_sessions": kept_stats(lake),
    }
    if approx:
        # Before system-prompt de-duplication; the written stats.json counts exactly.
        stats["messages"]["note"] = "upper bound: repeated system prompts not yet removed"
    return stats


def build_snapshot(
    lake_uri: str,
    spec: SnapshotSpec,
    out_dir: str | os.PathLike[str],
    *,
    versions: Mapping[str, int] | None = None,
    force: bool = False,
    reader: str = "auto",
    storage_options: Mapping[str, str] | None = None,
    memory_limit: str | None = "1GB",
    threads: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool | None = None,
    on_log: Callable[[str], None] | None = None,
    allow_empty: bool = True,
    exclude_sources: list[str] | None = None,
    disjoint_from: list[str] | None = None,
) -> dict[str, Any]:
    """Write train.jsonl, val.jsonl, stats.json and manifest.json to out_dir; returns the manifest.

    With allow_empty=False a selection without examples raises EmptySnapshotError (what each
    filter dropped) and writes nothing.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file, expected a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(
            f"output directory {out} is not empty; choose another --out or pass --force to overwrite"
        )
    created_at = datetime.now(timezone.utc).isoformat()

    with connect(lake_uri, versions=versions, reader=reader, storage_options=storage_options,  # type: ignore[arg-type]
                 memory_limit=memory_limit, threads=threads) as lake:
        counts = select(lake, spec)
        if not allow_empty and counts["examples"]["train"] + counts["examples"]["val"] == 0:
            raise EmptySnapshotError(explain_empty(lake, spec, counts))
        decontamination = _decontamination(lake, spec, exclude_sources, disjoint_from)
        out.mkdir(parents=True, exist_ok=True)
        _prepare_system(lake, spec)
        total_examples = counts["examples"]["train"] + counts["examples"]["val"]
        sinks = {"train": _Sink(out / "train.jsonl"), "val": _Sink(out / "val.jsonl")}
        roles: dict[str, int] = {}
        messages = 0
        bar = _progress(total_examples, progress)
        try:
            if spec.format == "preference":
                from lake.preference import write_pairs

                def put(is_val: bool, line: bytes) -> None:
                    sinks["val" if is_val else "train"].write(line, 1)

                counts["preference"] = write_pairs(lake, spec, put, batch_rows=batch_rows)
                counts["examples"] = dict(counts["preference"]["pairs_by_split"])
                total_examples = counts["preference"]["pairs"]
                messages = counts["preference"].pop("messages")
            else:
                lake.query(first_rows_sql(spec))
                write = _write_small if _estimated_rows(lake) <= SMALL_ROWS else _write_arrow
                messages = write(lake.query(stream_sql(spec)), sinks, roles, bar, batch_rows)
        finally:
            if bar is not None:
                bar.close()
        files = {f"{name}.jsonl": sink.close() for name, sink in sinks.items()}
        counts["messages"] = messages
        stats = _stats(lake, counts, messages, roles)
        stats_bytes = (json.dumps(stats, indent=2, sort_keys=True) + "\n").encode()
        stats_sink = _Sink(out / "stats.json")
        stats_sink.write(stats_bytes, 1)
        files["stats.json"] = stats_sink.close()
        versions_read = dict(lake.versions)
        rewards = [r for (r,) in lake.query(
            "SELECT total_reward FROM _snap_kept WHERE total_reward IS NOT NULL ORDER BY 1").fetchall()]
        written = files["train.jsonl"]["rows"] + files["val.jsonl"]["rows"]
        if written != total_examples:  # pragma: no cover - an invariant, not a user error
            raise RuntimeError(f"wrote {written} examples, selection had {total_examples}")

    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": created_at,
        "code_version": code_version(),
        "lake_uri": absolute_uri(lake_uri),  # --from-manifest works from any folder
        "table_versions": versions_read,
        "spec": spec.to_dict(),
        "counts": counts,
        "files": files,
    }
    if decontamination:
        manifest["decontamination"] = decontamination
    from lake.card import CARD, render_card

    (out / CARD).write_text(render_card(manifest, stats, rewards))
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out / MANIFEST)
    return manifest


def absolute_uri(lake_uri: str) -> str:
    """A local lake as an absolute path; object-store URIs unchanged."""
    if "://" in str(lake_uri) and not str(lake_uri).startswith("file://"):
        return str(lake_uri)
    return str(Path(str(lake_uri).removeprefix("file://")).resolve())


def _decontamination(lake: Lake, spec: SnapshotSpec, sources: list[str] | None,
                     disjoint_from: list[str] | None) -> dict[str, Any]:
    """Check --disjoint-from (raises on overlap) and describe the excluded set for the manifest."""
    out: dict[str, Any] = {}
    if spec.exclude_task_ids:
        from lake.decontam import ids_sha256

        out["excluded_task_ids"] = {"count": len(spec.exclude_task_ids), "sha256": ids_sha256(spec.exclude_task_ids),
                                    "sources": [str(s) for s in sources or []],
                                    "sessions_dropped": lake.query("SELECT count(*) FROM _snap_sessions "
                                                                   "WHERE drop_reason = 'excluded_task'").fetchone()[0]}
    if disjoint_from:
        from lake.decontam import check_disjoint

        kept = {t for (t,) in lake.query("SELECT DISTINCT task_id FROM _snap_kept WHERE task_id IS NOT NULL").fetchall()}
        out["disjoint_from"] = check_disjoint(kept, disjoint_from)
    return out


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST
    try:
        manifest = json.loads(p.read_text())
    except FileNotFoundError:
        raise ManifestError(f"manifest {p} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest {p} is not readable JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise ManifestError(f"manifest {p} is not format_version {FORMAT_VERSION}")
    for key in ("lake_uri", "table_versions", "spec", "files"):
        if key not in manifest:
            raise ManifestError(f"manifest {p} has no `{key}`")
    return manifest


def reproduce_snapshot(
    manifest_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    lake_uri: str | None = None,
    verify: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """Rebuild a snapshot from its manifest (same table versions, same spec); check the hashes."""
    old = load_manifest(manifest_path)
    spec = SnapshotSpec.from_dict(old["spec"])
    versions = {k: int(v) for k, v in old["table_versions"].items()}
    manifest = build_snapshot(lake_uri or old["lake_uri"], spec, out_dir, versions=versions, **kwargs)
    if verify:
        bad = [
            f"{name}: sha256 {manifest['files'][name]['sha256'][:12]}... != {meta['sha256'][:12]}..."
            for name, meta in old["files"].items()
            if name in manifest["files"] and manifest["files"][name]["sha256"] != meta.get("sha256")
        ]
        if bad:
            raise ReproductionMismatchError(
                f"reproduction in {out_dir} differs from {manifest_path}: {'; '.join(bad)} "
                "(different code_version or a rewritten table history?)"
            )
    return manifest


def _progress(total: int, enabled: bool | None) -> Any:
    if enabled is False or total == 0:
        return None
    from tqdm import tqdm

    # disable=None: shown only on a terminal unless asked for explicitly.
    return tqdm(total=total, unit="ex", desc="snapshot", disable=None if enabled is None else False)


def _chain(first: Any, then: Callable[[], Any]) -> Any:
    yield from first
    yield from then()

