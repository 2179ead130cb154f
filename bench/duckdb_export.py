"""The DuckDB JSON-export limit for bench.snapshot: a plain COPY of the lake's messages to JSON.

    python -m bench.duckdb_export --lake LAKE --out FILE.json

What DuckDB alone needs to turn the same Delta `messages` table into JSON on this machine, start-up
included (import, delta extension, scan, render, write): the ceiling a snapshot can approach
without storing pre-rendered messages. Prints {"bytes": ..., "rows": ...} as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.duckdb_export", description=__doc__)
    p.add_argument("--lake", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    import duckdb

    from lake.reader import delta_extension_path

    # The same connection settings as lake.connect (no signature re-check of the extension).
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False, "allow_unsigned_extensions": True})
    con.execute("SET memory_limit = '1GB'")
    con.execute(f"LOAD '{delta_extension_path()}'")
    table = os.path.abspath(os.path.join(args.lake, "messages"))
    rows = con.execute(f"""
        COPY (SELECT session_id, turn, idx_in_turn, role, content, tool_calls, tool_call_id, name
              FROM delta_scan('{table}'))
        TO '{args.out}' (FORMAT json)
    """).fetchone()[0]
    print(json.dumps({"bytes": os.path.getsize(args.out), "rows": int(rows)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
