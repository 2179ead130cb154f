"""The heavy pass of a snapshot: every example's messages, in line order, as JSONL pieces.

One row per example in `_snap_lines` holds what its messages need: the window of turns, the
last position, where the line starts, which system messages stay (a repeated system prompt is
written once), the turns masked out of the loss, and the line's tail (tools and metadata).
The messages table is then joined once, and each message row becomes a piece: the separator
before it, the message JSON and, after a line's last message, its tail. The pieces in (line,
position) order are the file.

The message JSON is stored pre-rendered by the worker (`message_json`); when the parquet footers
say every pinned row has it, the scan reads that column and no other text. Rows without it
(lakes written before the column, parts-list content) are rendered here, byte for byte the same.

Order without one big sort: the lines are cut into ranges whose pieces fit in memory and each
range is one ordered query (DuckDB sorts it without spilling); a small snapshot is one range.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from lake.formats import POS_SCALE, concat_bytes, render_sql, with_weight
from lake.reader import Lake, is_local
from lake.spec import SnapshotSpec
from lake.tables import MESSAGES, table_uri

__all__ = ["has_message_json", "prepare_lines", "rows_sql", "write_lines"]

SYSTEM = "('system', 'developer')"
# Up to about this many message rows the pieces come to Python as strings: no pyarrow import
# (0.2 s of a small snapshot's start-up); above, Arrow buffers are written without copies.
SMALL_ROWS = 300_000
# Pieces one ordered range may hold in memory; DuckDB's sort needs about twice that.
RANGE_BYTES = 384 << 20


class Sink(Protocol):
    def write(self, data: memoryview | bytes, rows: int) -> None: ...


def has_message_json(lake: Lake) -> bool:
    """Whether the pinned `messages` version has the pre-rendered column (lakes before it do not)."""
    cached = getattr(lake, "_has_message_json", None)
    if cached is None:
        names = [d[0] for d in lake.query("SELECT * FROM raw_messages LIMIT 0").description]
        cached = "message_json" in names
        lake._has_message_json = cached  # type: ignore[attr-defined]
    return bool(cached)


def _cols(lake: Lake) -> str:
    cols = "m.role, m.content, m.content_is_parts, m.tool_calls, m.tool_call_id, m.name"
    return cols + ", m.message_json" if has_message_json(lake) else cols


def rows_sql(lake: Lake, spec: SnapshotSpec) -> str:
    """CTE `rows`: the message rows of every example in `_snap_examples`, before rendering.

    Used by `--format preference` and `--stats-only`; needs `_snap_sys` (prepare_system).
    """
    if spec.include_system:
        keep_system = f"(NOT m.role IN {SYSTEM} OR y.prev_turn IS NULL OR y.prev_turn < e.win_start)"
        sys_join = f"LEFT JOIN _snap_sys y ON y.session_id = m.session_id AND y.pos = m.turn * {POS_SCALE} + m.idx_in_turn"
    else:
        keep_system, sys_join = f"NOT m.role IN {SYSTEM}", ""
    return f"""
        WITH ex AS (
            SELECT e.*, unnest(range(e.win_start, e.ex_turn + 1)) AS src_turn FROM _snap_examples e
        ),
        rows AS (
            SELECT e.ex_ord, e.session_id, m.turn, m.idx_in_turn,
                   m.turn * {POS_SCALE} + m.idx_in_turn AS pos, e.comp_start, e.end_pos,
                   e.is_val, e.ex_turn, {_cols(lake)}
            FROM ex e
            JOIN raw_messages m ON m.session_id = e.session_id AND m.turn = e.src_turn
            {sys_join}
            WHERE m.turn * {POS_SCALE} + m.idx_in_turn <= e.end_pos AND {keep_system}
        )
    """


def prepare_system(lake: Lake, spec: SnapshotSpec) -> None:
    """`_snap_sys`: the system messages of kept sessions, with the turn of the same one before."""
    if not spec.include_system:
        return
    lake.query(f"""
        CREATE OR REPLACE TABLE _snap_sys AS
        SELECT m.session_id, m.turn, m.idx_in_turn, m.turn * {POS_SCALE} + m.idx_in_turn AS pos,
               lag(m.turn) OVER (PARTITION BY m.session_id, m.role, m.content
                                 ORDER BY m.turn, m.idx_in_turn) AS prev_turn
        FROM raw_messages m SEMI JOIN _snap_kept k ON m.session_id = k.session_id
        WHERE m.role IN {SYSTEM}
    """)


def _carries(spec: SnapshotSpec) -> bool:
    """Turn examples with a context window bring the system message in effect before it."""
    return spec.include_system and spec.granularity == "turn" and spec.context_turns is not None


def prepare_lines(lake: Lake, spec: SnapshotSpec) -> None:
    """`_snap_lines`: one row per example with everything its message rows are filtered and framed by."""
    # Session lines (one per session, from turn 0) keep each system message's first occurrence:
    # a GROUP BY, cheaper than the window that turn windows need.
    first_only = spec.granularity == "session"
    if not first_only:
        prepare_system(lake, spec)
    q = lake.query
    # Where a line starts: its window's first message (a system message there is never a repeat
    # inside the window), or the first non-system one without system messages; a system
    # message carried from before the window comes first.
    col = "min_pos" if spec.include_system else "min_pos_nonsys"
    first = f"""
        SELECT e.ex_ord, t.{col} AS first_pos FROM _snap_examples e
        ASOF JOIN (SELECT session_id, turn, {col} FROM _snap_turn_msgs WHERE {col} IS NOT NULL) t
            ON e.session_id = t.session_id AND t.turn >= e.win_start
    """
    if _carries(spec):
        first = f"""
            WITH w AS ({first}),
            c AS (SELECT e.ex_ord, c.pos AS carry_pos FROM _snap_examples e
                  ASOF JOIN _snap_sys c ON e.session_id = c.session_id AND e.end_pos >= c.pos
                  WHERE c.turn < e.win_start)
            SELECT w.ex_ord, coalesce(c.carry_pos, w.first_pos) AS first_pos
            FROM w LEFT JOIN c ON c.ex_ord = w.ex_ord
        """
    ctes = [f"f AS ({first})",
            # Non-system rows per line, for cutting the stream into ranges (plus the kept system ones).
            f"""n AS (SELECT e.ex_ord, sum(t.n - t.n_sys) AS est_rows FROM _snap_examples e
                      JOIN _snap_turn_msgs t ON t.session_id = e.session_id
                       AND t.turn BETWEEN e.win_start AND e.ex_turn GROUP BY e.ex_ord)"""]
    est = "coalesce(n.est_rows, 0)"
    cols, joins = ["f.first_pos"], ["JOIN f USING (ex_ord)", "LEFT JOIN n USING (ex_ord)"]
    if spec.include_system:
        # The system messages a line keeps: inside its window, not a repeat of one earlier in it.
        if first_only:
            sys_rows = f"""(SELECT m.session_id, min(m.turn * {POS_SCALE} + m.idx_in_turn) AS pos
                            FROM raw_messages m SEMI JOIN _snap_kept k ON m.session_id = k.session_id
                            WHERE m.role IN {SYSTEM} GROUP BY m.session_id, m.role, m.content)"""
            cond = "y.pos <= e.end_pos"
        else:
            sys_rows = "_snap_sys"
            cond = ("y.turn BETWEEN e.win_start AND e.ex_turn AND y.pos <= e.end_pos "
                    "AND (y.prev_turn IS NULL OR y.prev_turn < e.win_start)")
        ctes.append(f"""s AS (SELECT e.ex_ord, list(y.pos ORDER BY y.pos) AS sys_keep FROM _snap_examples e
                              JOIN {sys_rows} y ON y.session_id = e.session_id AND {cond}
                              GROUP BY e.ex_ord)""")
        cols.append("coalesce(s.sys_keep, []::BIGINT[]) AS sys_keep")
        joins.append("LEFT JOIN s USING (ex_ord)")
        est += " + len(coalesce(s.sys_keep, []::BIGINT[]))"
    cols.append(f"{est} AS est_rows")
    if spec.mask_invalid_turns:
        # The turns whose assistant messages are context only (--mask-invalid-turns).
        ctes.append("""x AS (SELECT t.session_id, list(t.turn) AS masked_turns
                             FROM raw_turns t SEMI JOIN _snap_kept k ON t.session_id = k.session_id
                             WHERE t.valid = false OR t.reward = 0 GROUP BY t.session_id)""")
        cols.append("x.masked_turns")
        joins.append("LEFT JOIN x ON x.session_id = e.session_id")
    meta = "k.meta_json"
    if spec.granularity == "turn":
        meta = "substr(k.meta_json, 1, length(k.meta_json) - 1) || ',\"turn\":' || e.ex_turn || '}'"
    cols.append(f"""'],"tools":' || k.tools_json || ',"metadata":' || {meta} || '}}' || chr(10) AS tail""")
    q(f"""
        CREATE OR REPLACE TABLE _snap_lines AS
        WITH {", ".join(ctes)}
        SELECT e.*, {", ".join(cols)}
        FROM _snap_examples e JOIN _snap_kept k ON k.session_id = e.session_id {" ".join(joins)}
    """)


def stream_sql(lake: Lake, spec: SnapshotSpec, *, mode: str = "all", lines: tuple[int, int] | None = None,
               keys: bool = True) -> str:
    """The pieces of every line with their sort keys, ordered (or not) so that they concatenate to the file.

    mode "all": every row, rendered where it holds no stored JSON; "stored": the stored JSON
    only (reads no other message column; for lakes where every row has it). `lines`: only
    the lines lo <= ex_ord < hi. `keys`: the sort keys (ex_ord, pos) among the columns.
    """
    stored = has_message_json(lake)
    where = "" if lines is None else f"WHERE ex_ord >= {int(lines[0])} AND ex_ord < {int(lines[1])}"
    pos = f"m.turn * {POS_SCALE} + m.idx_in_turn"
    keep = f"NOT m.role IN {SYSTEM}"
    if spec.include_system:
        keep = f"({keep} OR list_contains(e.sys_keep, {pos}))"
    if spec.granularity == "session":
        # One line per session from its first turn: the session alone finds the rows.
        source = "e JOIN raw_messages m ON m.session_id = e.session_id"
    else:
        source = ("(SELECT e.*, unnest(range(e.win_start, e.ex_turn + 1)) AS src_turn FROM e) e "
                  "JOIN raw_messages m ON m.session_id = e.session_id AND m.turn = e.src_turn")
    if mode == "stored":
        base = "m.message_json"
    else:
        base = f"coalesce(m.message_json, {render_sql('m')})" if stored else render_sql("m")
    no_loss = "m.role = 'assistant' AND list_contains(e.masked_turns, m.turn)" if spec.mask_invalid_turns else None
    rows = f"""
        SELECT e.ex_ord, {pos} AS pos, e.first_pos, e.comp_start, e.end_pos, e.is_val, e.tail, m.role,
               {with_weight(base, no_loss)} AS msg
        FROM {source}
        WHERE {pos} <= e.end_pos AND {keep}
    """
    if _carries(spec):
        # The system message in effect before a turn window (its latest one before the window).
        rows += f"""
            UNION ALL
            SELECT e.ex_ord, c.pos, e.first_pos, e.comp_start, e.end_pos, e.is_val, e.tail, m.role, {base} AS msg
            FROM e ASOF JOIN _snap_sys c ON e.session_id = c.session_id AND e.end_pos >= c.pos
            JOIN raw_messages m ON m.session_id = c.session_id AND m.turn = c.turn AND m.idx_in_turn = c.idx_in_turn
            WHERE c.turn < e.win_start
        """
    if spec.format == "prompt_completion":
        head = """CASE WHEN r.pos = r.first_pos THEN '{"prompt":[' ELSE '' END
               || CASE WHEN r.pos = r.comp_start THEN '],"completion":['
                       WHEN r.pos = r.first_pos THEN '' ELSE ',' END"""
    else:
        head = """CASE WHEN r.pos = r.first_pos THEN '{"messages":[' ELSE ',' END"""
    return f"""
        WITH e AS (SELECT * FROM _snap_lines {where}),
        r AS ({rows})
        SELECT {"r.ex_ord, r.pos, " if keys else ""}r.role, r.is_val, r.pos = r.end_pos AS is_last,
               {head} || r.msg || CASE WHEN r.pos = r.end_pos THEN r.tail ELSE '' END AS piece
        FROM r ORDER BY r.ex_ord, r.pos
    """


def _ranges(lake: Lake, budget_rows: int) -> list[tuple[int, int]]:
    """Cut the lines into [lo, hi) ranges of about budget_rows message rows each."""
    cuts = [lo for (lo,) in lake.query(f"""
        SELECT min(ex_ord) FROM (
            SELECT ex_ord, (sum(est_rows) OVER (ORDER BY ex_ord) - est_rows) // {max(int(budget_rows), 1)} AS r
            FROM _snap_lines)
        GROUP BY r ORDER BY 1
    """).fetchall()]
    end = lake.query("SELECT coalesce(max(ex_ord) + 1, 0) FROM _snap_lines").fetchone()[0]
    return [(lo, hi) for lo, hi in zip(cuts, cuts[1:] + [end])] or [(0, 0)]


def write_lines(lake: Lake, spec: SnapshotSpec, sinks: Mapping[str, Sink], roles: dict[str, int], bar: Any,
                batch_rows: int, *, range_bytes: int | None = None) -> int:
    """Write every line to sinks["train"] / sinks["val"]; returns the message rows written."""
    est_rows, row_bytes = lake.query(f"""
        SELECT coalesce(sum(est_rows), 0), {_row_bytes(lake)} FROM _snap_lines
    """).fetchone()
    # Every pinned message stored pre-rendered: the scan reads message_json and no other text.
    mode = "stored" if _all_stored(lake) else "all"
    if est_rows <= SMALL_ROWS:
        # Fewer columns: every value becomes a Python object on this path.
        small = stream_sql(lake, spec, mode=mode, keys=False)
        return _write_small(lake.query(small), sinks, roles, bar, batch_rows)
    messages = 0
    for lo, hi in _ranges(lake, (range_bytes or RANGE_BYTES) // max(int(row_bytes or 1), 1)):
        result = lake.query(stream_sql(lake, spec, mode=mode, lines=(lo, hi)))
        messages += _write_arrow(result, sinks, roles, bar, batch_rows)
    return messages


def _all_stored(lake: Lake) -> bool:
    """Whether every message row at the pinned version holds message_json, from the parquet footers.

    Only for local lakes read with the delta extension (file names and footers are cheap there);
    elsewhere the snapshot renders where the column is null, reading the other columns too.
    """
    if not has_message_json(lake) or lake.reader != "delta" or not is_local(lake.lake_uri):
        return False
    uri = str(Path(table_uri(lake.lake_uri, MESSAGES).removeprefix("file://")).resolve())
    files = [f for (f,) in lake.query(f"""
        SELECT DISTINCT filename FROM delta_scan({_lit(uri)}, version := {int(lake.versions[MESSAGES])}, filename := true)
    """).fetchall()]
    if not files:
        return True
    rows, stored = lake.query(f"""
        SELECT sum(num_values) FILTER (WHERE path_in_schema = 'session_id'),
               sum(num_values - stats_null_count) FILTER (WHERE path_in_schema = 'message_json')
        FROM parquet_metadata([{", ".join(_lit(f) for f in files)}])
    """).fetchone()
    return rows is not None and stored is not None and int(rows) == int(stored)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _row_bytes(lake: Lake) -> str:
    """SQL: about the bytes of one piece, from the first messages of the table (a LIMIT reads one file)."""
    size = "strlen(message_json)" if has_message_json(lake) else "NULL"
    return f"""(SELECT coalesce(avg(coalesce({size}, strlen(coalesce(content, '')) + strlen(coalesce(tool_calls, ''))
                                           + 40)), 0) + 16
               FROM (SELECT * FROM raw_messages LIMIT 16384))"""


def _write_small(result: Any, sinks: Mapping[str, Sink], roles: dict[str, int], bar: Any, batch_rows: int) -> int:
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


def _write_arrow(result: Any, sinks: Mapping[str, Sink], roles: dict[str, int], bar: Any, batch_rows: int) -> int:
    """Write the stream's pieces straight from Arrow buffers; returns the message rows written."""
    import pyarrow.compute as pc

    messages = 0
    for batch in result.to_arrow_reader(batch_rows):
        is_last, is_val, pieces = batch.column("is_last"), batch.column("is_val"), batch.column("piece")
        lines = int(pc.sum(is_last).as_py() or 0)
        if pc.any(is_val).as_py():
            val_lines = int(pc.sum(pc.and_(is_last, is_val)).as_py() or 0)
            sinks["train"].write(concat_bytes(pieces.filter(pc.invert(is_val))), lines - val_lines)
            sinks["val"].write(concat_bytes(pieces.filter(is_val)), val_lines)
        else:
            sinks["train"].write(concat_bytes(pieces), lines)
        messages += batch.num_rows
        for item in pc.value_counts(batch.column("role")).to_pylist():
            roles[str(item["values"])] = roles.get(str(item["values"]), 0) + int(item["counts"])
        if bar is not None:
            bar.update(lines)
    return messages
