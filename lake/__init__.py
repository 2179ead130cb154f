"""The lake: Delta tables written exactly once, DuckDB views, snapshots and maintenance."""

from typing import TYPE_CHECKING

from lake.exceptions import (
    FilterSpecError,
    LakeError,
    LakeNotFoundError,
    ManifestError,
    OutputExistsError,
    QueryError,
    ReadOnlyQueryError,
    ReproductionMismatchError,
    TableVersionError,
)
from schemas.lazy import lazy_getattr

# Everything else loads on first use, so `python -m lake snapshot` on a small lake imports only
# what it runs (no deltalake writer, maintenance or stats code).
_LAZY = {
    "Lake": "lake.reader", "connect": "lake.reader", "current_versions": "lake.reader",
    "SnapshotSpec": "lake.spec", "load_toml": "lake.spec",
    "TableMaintenance": "lake.maintain", "maintain": "lake.maintain",
    "consistent_versions": "lake.pins",
    "build_snapshot": "lake.export", "load_manifest": "lake.export", "plan_snapshot": "lake.export",
    "reproduce_snapshot": "lake.export",
    "lake_overview": "lake.stats",
    **dict.fromkeys(("DEAD_LETTERS", "MESSAGES", "REWARDS", "SCHEMAS", "SESSIONS", "TABLES", "TURNS", "table_uri"),
                    "lake.tables"),
    "VIEWS": "lake.views",
    "LakeWriter": "lake.writer", "app_id_for": "lake.writer",
}

if TYPE_CHECKING:
    from lake.export import build_snapshot, load_manifest, plan_snapshot, reproduce_snapshot
    from lake.maintain import TableMaintenance, maintain
    from lake.pins import consistent_versions
    from lake.reader import Lake, connect, current_versions
    from lake.spec import SnapshotSpec, load_toml
    from lake.stats import lake_overview
    from lake.tables import DEAD_LETTERS, MESSAGES, REWARDS, SCHEMAS, SESSIONS, TABLES, TURNS, table_uri
    from lake.views import VIEWS
    from lake.writer import LakeWriter, app_id_for


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "DEAD_LETTERS",
    "MESSAGES",
    "REWARDS",
    "SCHEMAS",
    "SESSIONS",
    "TABLES",
    "TURNS",
    "VIEWS",
    "FilterSpecError",
    "Lake",
    "LakeError",
    "LakeNotFoundError",
    "LakeWriter",
    "ManifestError",
    "OutputExistsError",
    "QueryError",
    "ReadOnlyQueryError",
    "ReproductionMismatchError",
    "SnapshotSpec",
    "TableMaintenance",
    "TableVersionError",
    "app_id_for",
    "build_snapshot",
    "connect",
    "consistent_versions",
    "current_versions",
    "lake_overview",
    "load_manifest",
    "load_toml",
    "maintain",
    "plan_snapshot",
    "reproduce_snapshot",
    "table_uri",
]
