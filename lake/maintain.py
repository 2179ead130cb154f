"""`lake maintain`: compact small files, checkpoint and vacuum each table, safely.

Safe means: vacuum keeps every file a reader of the last `retention_hours` may still need
(default 7 days, which is also how far back `--from-manifest` can reproduce), checkpoints are
kept, and the app-transaction retention (`delta.setTransactionRetentionDuration`) is never
set, so the ingestion worker's exactly-once offsets survive every checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lake.exceptions import FilterSpecError, LakeNotFoundError
from lake.tables import TABLES, table_uri

__all__ = ["DEFAULT_RETENTION_HOURS", "TableMaintenance", "maintain"]

DEFAULT_RETENTION_HOURS = 7 * 24


@dataclass
class TableMaintenance:
    table: str
    version_before: int
    version_after: int | None = None
    files_before: int = 0
    files_after: int | None = None
    compacted_removed: int = 0
    compacted_added: int = 0
    checkpoint_version: int | None = None
    vacuumed_files: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def maintain(
    lake_uri: str,
    *,
    tables: Sequence[str] | None = None,
    retention_hours: float = DEFAULT_RETENTION_HOURS,
    compact: bool = True,
    checkpoint: bool = True,
    vacuum: bool = True,
    dry_run: bool = False,
    allow_short_retention: bool = False,
    storage_options: Mapping[str, str] | None = None,
) -> list[TableMaintenance]:
    """Maintain each table; a failure on one table is recorded and the others still run."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    chosen = list(tables or TABLES)
    unknown = [t for t in chosen if t not in TABLES]
    if unknown:
        raise FilterSpecError(f"unknown table(s) {unknown}; the lake's tables are {', '.join(TABLES)}")
    if retention_hours < 0:
        raise FilterSpecError(f"--retention-hours {retention_hours} must be >= 0")
    if retention_hours < DEFAULT_RETENTION_HOURS and not allow_short_retention:
        raise FilterSpecError(
            f"--retention-hours {retention_hours} is under the safe {DEFAULT_RETENTION_HOURS} h: "
            "readers and --from-manifest reproductions older than that would lose their files; "
            "pass --force to do it anyway"
        )
    from lake.storage import public_uri, resolve_storage_options

    opts = resolve_storage_options(lake_uri, storage_options)
    report = []
    for name in chosen:
        uri = table_uri(lake_uri, name)
        try:
            dt = DeltaTable(uri, storage_options=opts)
        except TableNotFoundError as exc:
            raise LakeNotFoundError(f"no Delta table `{name}` at {public_uri(uri)}; is LAKE_URI right?") from exc
        except OSError as exc:
            from lake.storage import unreachable

            raise unreachable(uri, exc) from None
        item = TableMaintenance(table=name, version_before=dt.version(), files_before=len(dt.file_uris()))
        try:
            if compact and not dry_run:
                metrics = dt.optimize.compact()
                item.compacted_removed = int(metrics.get("numFilesRemoved", 0))
                item.compacted_added = int(metrics.get("numFilesAdded", 0))
                dt.update_incremental()
            if checkpoint and not dry_run:
                dt.create_checkpoint()
                item.checkpoint_version = dt.version()
            if vacuum:
                # Under the table's own deletedFileRetentionDuration only when forced (checked above).
                removed = dt.vacuum(
                    retention_hours=int(retention_hours),
                    dry_run=dry_run,
                    enforce_retention_duration=not allow_short_retention,
                )
                item.vacuumed_files = len(removed)
            dt.update_incremental()
        except DeltaError as exc:
            item.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        item.version_after = dt.version()
        item.files_after = len(dt.file_uris())
        report.append(item)
    return report
