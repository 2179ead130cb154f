"""The lake: Delta tables written exactly once, DuckDB views, snapshots and maintenance."""

from lake.duck import Lake, connect, current_versions
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
from lake.filters import SnapshotSpec, load_toml
from lake.maintain import TableMaintenance, maintain
from lake.snapshot import build_snapshot, load_manifest, plan_snapshot, reproduce_snapshot
from lake.stats import lake_overview
from lake.tables import DEAD_LETTERS, MESSAGES, REWARDS, SCHEMAS, SESSIONS, TABLES, TURNS, table_uri
from lake.views import VIEWS
from lake.writer import LakeWriter, app_id_for

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
    "current_versions",
    "lake_overview",
    "load_manifest",
    "load_toml",
    "maintain",
    "plan_snapshot",
    "reproduce_snapshot",
    "table_uri",
]
