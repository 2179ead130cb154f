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

from lake.exceptions import EmptySnapshotError, ManifestError, OutputExistsError, ReproductionMismatchError
from lake.formats import POS_SCALE
from lake.reader import Lake, connect
from lake.selection import kept_stats, select
from lake.spec import SnapshotSpec, session_predicates
from schemas.exceptions import ManifestError as ManifestFormatError
from schemas.manifest import (
    CARD_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    STATS_FILE,
    TRAIN_FILE,
    VAL_FILE,
    SnapshotManifest,
    parse_manifest,
)

__all__ = [
    "absolute_uri",
    "build_snapshot",
    "code_version",
    "explain_empty",
    "load_manifest",
    "plan_snapshot",
    "reproduce_snapshot",
]

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
    """Write train.jsonl, val.jsonl, stats.json, manifest.json and the card; returns the manifest's JSON.

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
        total_examples = counts["examples"]["train"] + counts["examples"]["val"]
        sinks = {"train": _Sink(out / TRAIN_FILE), "val": _Sink(out / VAL_FILE)}
        roles: dict[str, int] = {}
        messages = 0
        bar = _progress(total_examples, progress)
        try:
            if spec.format == "preference":
                from lake.lines import prepare_system
                from lake.preference import write_pairs

                prepare_system(lake, spec)

                def put(is_val: bool, line: bytes) -> None:
                    sinks["val" if is_val else "train"].write(line, 1)

                counts["preference"] = write_pairs(lake, spec, put, batch_rows=batch_rows)
                counts["examples"] = dict(counts["preference"]["pairs_by_split"])
                total_examples = counts["preference"]["pairs"]
                messages = counts["preference"].pop("messages")
            else:
                from lake.lines import prepare_lines, write_lines

                prepare_lines(lake, spec)
                messages = write_lines(lake, spec, sinks, roles, bar, batch_rows)
        finally:
            if bar is not None:
                bar.close()
        files = {sink.path.name: sink.close() for sink in sinks.values()}
        counts["messages"] = messages
        stats = _stats(lake, counts, messages, roles)
        stats_bytes = (json.dumps(stats, indent=2, sort_keys=True) + "\n").encode()
        stats_sink = _Sink(out / STATS_FILE)
        stats_sink.write(stats_bytes, 1)
        files[STATS_FILE] = stats_sink.close()
        versions_read = dict(lake.versions)
        rewards = [r for (r,) in lake.query(
            "SELECT total_reward FROM _snap_kept WHERE total_reward IS NOT NULL ORDER BY 1").fetchall()]
        written = files[TRAIN_FILE]["rows"] + files[VAL_FILE]["rows"]
        if written != total_examples:  # pragma: no cover - an invariant, not a user error
            raise RuntimeError(f"wrote {written} examples, selection had {total_examples}")

    manifest = SnapshotManifest(
        format_version=FORMAT_VERSION,
        created_at=created_at,
        code_version=code_version(),
        lake_uri=absolute_uri(lake_uri),  # --from-manifest works from any folder
        table_versions=versions_read,
        spec=spec.to_dict(),
        counts=counts,
        files=files,
        decontamination=decontamination or None,
    )
    written_manifest = manifest.to_dict()
    from lake.card import render_card

    (out / CARD_FILE).write_text(render_card(written_manifest, stats, rewards))
    tmp = out / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(manifest.to_json())
    os.replace(tmp, out / MANIFEST_FILE)
    return written_manifest


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


def load_manifest(path: str | os.PathLike[str]) -> SnapshotManifest:
    """A snapshot's manifest.json (or the one in a snapshot directory), validated."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_FILE
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"manifest {p} does not exist") from None
    except OSError as exc:
        raise ManifestError(f"manifest {p} is not readable: {exc}") from exc
    try:
        return parse_manifest(raw, source=f"manifest {p}")
    except ManifestFormatError as exc:
        raise ManifestError(str(exc)) from exc


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
    spec = SnapshotSpec.from_dict(old.spec)
    manifest = build_snapshot(lake_uri or old.lake_uri, spec, out_dir, versions=old.table_versions, **kwargs)
    if verify:
        bad = [
            f"{name}: sha256 {manifest['files'][name]['sha256'][:12]}... != {meta.sha256[:12]}..."
            for name, meta in old.files.items()
            if name in manifest["files"] and manifest["files"][name]["sha256"] != meta.sha256.lower()
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

