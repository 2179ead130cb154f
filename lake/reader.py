"""A DuckDB connection over the lake: every Delta table pinned to one version, plus the views.

Pinning is what makes a query consistent while the worker keeps committing: the versions are
read once (or taken from a manifest) and every scan reads exactly those snapshots, which is
also how a snapshot is reproduced later (Delta time travel).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from lake.exceptions import LakeNotFoundError, QueryError, ReadOnlyQueryError, TableVersionError
from lake.storage import create_duckdb_secret, is_local, public_uri, resolve_storage_options
from lake.tables import TABLES, table_uri
from lake.views import VIEWS, view_statements

__all__ = ["Lake", "Reader", "connect", "current_versions", "delta_extension_path", "httpfs_extension_path", "is_local"]

Reader = Literal["auto", "delta", "arrow"]


def _local_path(uri: str) -> str:
    return str(Path(uri.removeprefix("file://")).resolve())


def delta_extension_path() -> str:
    """The DuckDB delta extension shipped in the duckdb-extension-delta wheel."""
    import duckdb_extension_delta

    return _extension_path(duckdb_extension_delta.__file__, "delta")


def httpfs_extension_path() -> str:
    """The DuckDB httpfs extension (S3 reads) shipped in the duckdb-extension-httpfs wheel."""
    import duckdb_extension_httpfs

    return _extension_path(duckdb_extension_httpfs.__file__, "httpfs")


def _extension_path(package_file: str, name: str) -> str:
    # The wheels hold the binaries; `INSTALL` would download and cannot run offline.
    import duckdb

    root = Path(package_file).parent / "extensions"
    exact = root / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if exact.exists():
        return str(exact)
    found = sorted(root.glob(f"*/{name}.duckdb_extension"))
    if not found:
        raise LakeNotFoundError(
            f"no {name}.duckdb_extension under {root}; reinstall duckdb-extension-{name}=="
            f"{duckdb.__version__} or use --reader arrow"
        )
    return str(found[-1])


def current_versions(
    lake_uri: str, *, storage_options: Mapping[str, str] | None = None
) -> dict[str, int]:
    """The latest committed version of every table of the lake."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    opts = resolve_storage_options(lake_uri, storage_options)
    versions = {}
    for name in TABLES:
        uri = table_uri(lake_uri, name)
        try:
            versions[name] = DeltaTable(uri, storage_options=opts).version()
        except TableNotFoundError as exc:
            raise LakeNotFoundError(
                f"no Delta table `{name}` at {public_uri(uri)}: is LAKE_URI (or --lake) right? The worker "
                "creates the tables when it starts"
            ) from exc
    return versions


class Lake:
    """An in-memory DuckDB connection whose views read the lake at pinned table versions."""

    def __init__(
        self, con: Any, lake_uri: str, versions: dict[str, int], reader: str, spill_dir: str | None = None
    ) -> None:
        self.con = con
        self.spill_dir = spill_dir
        self.lake_uri = lake_uri
        self.versions = versions
        self.reader = reader
        self._locked = False

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()
        if self.spill_dir:
            shutil.rmtree(self.spill_dir, ignore_errors=True)

    def lock_down(self) -> None:
        """No file access outside the lake's tables and no setting changes from here on."""
        if self._locked:
            return
        if self.reader == "delta":
            local = is_local(self.lake_uri)
            dirs = [(_local_path(table_uri(self.lake_uri, t)) if local else table_uri(self.lake_uri, t)) + "/"
                    for t in TABLES]
            # Literals, not parameters: binding a Python parameter makes DuckDB import pandas (0.5 s).
            self.con.execute(f"SET allowed_directories = [{', '.join(_quote(d) for d in dirs)}]")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")
        self._locked = True

    def query(self, sql: str, params: list[Any] | None = None) -> Any:
        """Run SQL (trusted, from this package); DuckDB errors become QueryError."""
        import duckdb

        try:
            return self.con.execute(sql, params) if params else self.con.execute(sql)
        except duckdb.IOException as exc:
            raise TableVersionError(_io_hint(exc, self.versions)) from exc
        except duckdb.Error as exc:
            raise QueryError(str(exc).splitlines()[0] if str(exc) else repr(exc)) from exc

    def read_only_query(self, sql: str) -> Any:
        """Run one user SELECT; anything that could write, attach or reconfigure is refused."""
        check_read_only(self.con, sql)
        self.lock_down()
        return self.query(sql)


def check_read_only(con: Any, sql: str) -> None:
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc).splitlines()[0]) from exc
    if len(statements) != 1:
        raise ReadOnlyQueryError(
            f"expected exactly one SELECT statement, got {len(statements)}; run them one at a time"
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = kind.name.replace("_", " ")
        raise ReadOnlyQueryError(
            f"`lake sql` is read-only: {name} statements are refused (writes, ATTACH, COPY, SET "
            "and DDL never run here); only SELECT queries over the views are allowed"
        )


def _io_hint(exc: Exception, versions: Mapping[str, int]) -> str:
    text = str(exc).splitlines()[0]
    return (
        f"{text} (reading table versions {dict(versions)}; a version older than the vacuum "
        "retention may have lost its files)"
    )


def connect(
    lake_uri: str,
    *,
    versions: Mapping[str, int] | None = None,
    reader: Reader = "auto",
    storage_options: Mapping[str, str] | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | None = None,
) -> Lake:
    """Open the lake at `versions` (default: the latest consistent point, lake.pins) with its views.

    reader "delta" scans with DuckDB's delta extension (`delta_scan(..., version := v)`);
    "arrow" registers deltalake's `DeltaTable(uri, version=v).to_pyarrow_dataset()`. "auto": delta.
    An s3:// lake is read through DuckDB's httpfs with a secret built from `storage_options`
    (default: the environment's, lake.storage), or through deltalake with the same options.
    """
    import duckdb

    lake_uri = str(lake_uri)
    storage_options = resolve_storage_options(lake_uri, storage_options)
    if versions is None:
        from lake.pins import consistent_versions

        versions = consistent_versions(lake_uri, storage_options=storage_options)
    pinned = dict(versions)
    missing = [t for t in TABLES if t not in pinned]
    if missing:
        raise TableVersionError(f"no pinned version for table(s) {missing}; expected one per {TABLES}")
    if reader == "auto":
        reader = "delta"

    # allow_unsigned_extensions skips re-verifying the signature of the 80 MB delta extension on
    # every start (about 1 s, most of a small snapshot's time); the only extension loaded is the
    # one at delta_extension_path(), user SQL can never LOAD (SELECT only), and lock_down()
    # locks the configuration before any user SQL runs.
    con = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                "allow_unsigned_extensions": True},
    )
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit:
        con.execute(f"SET memory_limit = {_quote(str(memory_limit))}")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    # A private spill directory: DuckDB always allows its temp directory, so never all of /tmp.
    spill = tempfile.mkdtemp(prefix="lake-duckdb-", dir=temp_directory)
    con.execute(f"SET temp_directory = {_quote(spill)}")
    lake = Lake(con, lake_uri, pinned, reader, spill)
    try:
        if reader == "delta":
            con.execute(f"LOAD '{delta_extension_path()}'")
            if not is_local(lake_uri):
                con.execute(f"LOAD '{httpfs_extension_path()}'")
                create_duckdb_secret(con, lake_uri, storage_options)
            for name in TABLES:
                uri = table_uri(lake_uri, name)
                uri = _local_path(uri) if is_local(uri) else uri
                if is_local(uri) and not os.path.isdir(os.path.join(uri, "_delta_log")):
                    raise LakeNotFoundError(f"no Delta table `{name}` at {uri}; is LAKE_URI right?")
                lake.query(
                    f"CREATE VIEW raw_{name} AS SELECT * FROM "
                    f"delta_scan({_quote(uri)}, version := {int(pinned[name])})"
                )
        elif reader == "arrow":
            _register_arrow(con, lake_uri, pinned, storage_options)
        else:
            raise QueryError(f"reader {reader!r} is not one of auto, delta, arrow")
        for stmt in view_statements():
            lake.query(stmt)
        # Bind every view now so a vacuumed or missing version fails here, with a hint.
        for name in VIEWS:
            lake.query(f"DESCRIBE {name}")
    except BaseException:
        lake.close()
        raise
    return lake


def _register_arrow(
    con: Any, lake_uri: str, pinned: Mapping[str, int], storage_options: Mapping[str, str] | None
) -> None:
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    for name in TABLES:
        uri = table_uri(lake_uri, name)
        try:
            dt = DeltaTable(uri, version=int(pinned[name]), storage_options=dict(storage_options or {}) or None)
        except TableNotFoundError as exc:
            raise LakeNotFoundError(f"no Delta table `{name}` at {public_uri(uri)}; is LAKE_URI right?") from exc
        except DeltaError as exc:
            raise TableVersionError(f"cannot open `{name}` at version {pinned[name]}: {exc}") from exc
        con.register(f"_arrow_{name}", dt.to_pyarrow_dataset())
        con.execute(f"CREATE VIEW raw_{name} AS SELECT * FROM _arrow_{name}")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
