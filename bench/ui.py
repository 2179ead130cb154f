"""`python -m lake ui` render times on a lake of 10,000 sessions (target: a page in under 1 s).

The lake is written through streams.worker.offline (the worker's validation, assembly and exactly-once
writer) and cached under bench/out/. The server is started as a user starts it
(`python -m lake ui --port 0`) and each page is fetched over HTTP: the time is the whole request
(pin check, DuckDB queries, template, transfer). Answers that depend only on the pinned versions
(the form's suggestions, a filter's counts) are remembered until the versions change, so two
rows show the uncached cost: a new filter per request, and the first request after a commit. Baselines from the same run: the page's own
queries on an already open pinned connection (what the UI adds on top of DuckDB), and
`lake.reader.connect` (what the first request after a worker commit pays to pin the new versions).

    python -m bench.ui [--sessions 10000] [--repeats 7] [--no-save]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import SCRATCH, machine, machine_md, percentile, report

TURNS = 20
CHUNK = 2500
TARGET_S = 1.0
FILTERED = "?min_reward=1&splits=train&sort=reward"


def build(lake: Path, n_sessions: int) -> dict[str, Any]:
    from streams.devtools.synthetic import make_sessions
    from streams.worker.offline import write_events

    marker = lake / "BUILT.json"
    if marker.exists() and json.loads(marker.read_text())["sessions"] == n_sessions:
        return json.loads(marker.read_text())
    shutil.rmtree(lake, ignore_errors=True)
    lake.mkdir(parents=True)
    t = time.perf_counter()
    for i, start in enumerate(range(0, n_sessions, CHUNK)):
        sessions = make_sessions(min(CHUNK, n_sessions - start), TURNS, seed=i, run_id=f"bench-{i % 2}")
        write_events(str(lake), (e for s in sessions for e in s.events), topic="bench", batch_rows=1_000_000)
        print(f"  built {start + len(sessions):,} sessions", file=sys.stderr, flush=True)
    info = {"sessions": n_sessions, "turns_per_session": TURNS, "messages": n_sessions * TURNS * 4,
            "write_s": round(time.perf_counter() - t, 1),
            "lake_mib": round(sum(f.stat().st_size for f in lake.rglob("*") if f.is_file()) / 2**20, 1)}
    marker.write_text(json.dumps(info))
    return info


def _get(url: str) -> tuple[float, int]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
        assert r.status == 200, (url, r.status)
    return time.perf_counter() - t, len(body)


def _stats(times: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(times), 3), "p90_s": round(percentile(times, 0.9) or 0, 3),
            "max_s": round(max(times), 3)}


def _baselines(lake: Path, session_id: str, repeats: int) -> dict[str, dict[str, float]]:
    """The list and session pages' queries on an open pinned connection, and a fresh connect()."""
    from lake.reader import connect
    from lake.spec import SnapshotSpec
    from lake.ui import queries

    out: dict[str, list[float]] = {"list_queries": [], "session_queries": [], "connect": []}
    spec = SnapshotSpec()
    for _ in range(3):
        t = time.perf_counter()
        con = connect(str(lake))
        con.lock_down()
        out["connect"].append(time.perf_counter() - t)
        con.close()
    with connect(str(lake)) as con:
        con.lock_down()
        queries.list_sessions(con, spec, sort="started_at", offset=0, limit=50)  # warm-up
        queries.session_detail(con, session_id)
        for _ in range(repeats):
            t = time.perf_counter()
            queries.choices(con)
            queries.session_counts(con, spec)
            queries.list_sessions(con, spec, sort="started_at", offset=0, limit=50)
            out["list_queries"].append(time.perf_counter() - t)
            t = time.perf_counter()
            queries.session_detail(con, session_id)
            out["session_queries"].append(time.perf_counter() - t)
    return {k: _stats(v) for k, v in out.items()}


def run(lake: Path, repeats: int) -> dict[str, Any]:
    from streams.devtools.synthetic import make_sessions
    from streams.worker.offline import write_events

    session_id = f"bench-0-s0-{123:06d}"
    proc = subprocess.Popen([sys.executable, "-m", "lake", "ui", "--lake", str(lake), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"(http://\S+/)", line)
        assert m, f"lake ui printed {line!r}"
        url = m.group(1)
        pages = {
            "sessions list (page 1 of 200, 50 rows)": "",
            "sessions list, filtered and sorted (--min-reward 1 --splits train)": FILTERED,
            "sessions list, last page": "?page=200",
            f"session page ({TURNS} turns, {TURNS * 4} messages)": f"session?id={session_id}",
            "runs chart": "runs",
            "tasks": "tasks",
            "dead letters": "dead-letters",
        }
        first, _ = _get(url)  # the server's first request opens the pinned connection
        results: dict[str, Any] = {"first_request_s": round(first, 3)}
        for name, path in pages.items():
            _get(url + path)  # warm-up
            times, size = [], 0
            for _ in range(repeats):
                t, size = _get(url + path)
                times.append(t)
            results[name] = {**_stats(times), "kib": round(size / 1024, 1), "path": "/" + path}
        # A new filter each time: the counts for it are computed, not remembered.
        fresh = [_get(url + f"?min_reward={0.05 * (i + 1):.2f}&splits=train")[0] for i in range(repeats)]
        results["sessions list, a new filter each request"] = {**_stats(fresh), "path": "/?min_reward=X&splits=train"}
        # While the worker writes: the first request after a commit pins the new versions (a new
        # connection) and computes everything afresh.
        live = {"sessions list": "", "session page": f"session?id={session_id}", "runs chart": "runs", "tasks": "tasks"}
        seed = 10_000
        for name, path in live.items():
            after = []
            for _ in range(3):
                seed += 1
                extra = make_sessions(1, TURNS, seed=seed, run_id="bench-live")
                write_events(str(lake), (e for s in extra for e in s.events), topic="bench")
                t, _ = _get(url + path)
                after.append(t)
            results[f"{name}, first request after a worker commit"] = {**_stats(after), "path": "/" + path}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return results


def markdown(r: dict[str, Any]) -> str:
    lines = ["# UI benchmark (`python -m lake ui`)", "", machine_md(r["machine"]),
             f"- data: {r['lake']['sessions']:,} sessions x {r['lake']['turns_per_session']} turns "
             f"({r['lake']['messages']:,} messages), lake {r['lake']['lake_mib']} MiB, written through streams.worker.offline",
             f"- each page fetched over HTTP from `python -m lake ui` {r['repeats']} times after a warm-up; "
             "time = the whole request (pin check, queries, template, transfer)",
             "- answers that depend only on the pinned versions (suggestions, a filter's counts, runs, tasks) are "
             "remembered until a commit changes them: the rows *a new filter each request* and *first request "
             "after a worker commit* show the uncached cost", "",
             "| page | median s | p90 s | max s | KiB | under 1 s |", "|---|---|---|---|---|---|"]
    for name, v in r["pages"].items():
        if isinstance(v, dict):
            lines.append(f"| {name} (`{v['path']}`) | {v['median_s']} | {v['p90_s']} | {v['max_s']} | "
                         f"{v.get('kib', '')} | {'yes' if v['max_s'] < TARGET_S else '**no**'} |")
    b = r["baselines"]
    lst = r["pages"]["sessions list (page 1 of 200, 50 rows)"]["median_s"]
    ses = next(v for k, v in r["pages"].items() if k.startswith("session page"))["median_s"]
    live = r["pages"]["sessions list, first request after a worker commit"]["median_s"]
    worst_live = max(v["median_s"] for k, v in r["pages"].items() if k.endswith("after a worker commit"))
    lines += ["", "Baselines (same run, same lake, in-process):", "",
              "| baseline | median s |", "|---|---|",
              f"| the list page's queries (suggestions, counts, rows; nothing remembered) on an open pinned connection | {b['list_queries']['median_s']} |",
              f"| the session page's queries on an open pinned connection | {b['session_queries']['median_s']} |",
              f"| `lake.reader.connect` + lock_down (pinning new versions) | {b['connect']['median_s']} |", "",
              f"Ratios: list page / its queries {lst / max(b['list_queries']['median_s'], 1e-6):.2f}; "
              f"session page / its queries {ses / max(b['session_queries']['median_s'], 1e-6):.2f}; "
              f"first request after a commit / warm list page {live / max(lst, 1e-6):.2f} "
              f"(connect alone {b['connect']['median_s']} s).", "",
              "| target | value | met |", "|---|---|---|",
              f"| sessions list under {TARGET_S:g} s at {r['lake']['sessions']:,} sessions (median) | {lst} s | "
              f"{'yes' if lst < TARGET_S else '**no**'} |",
              f"| session page under {TARGET_S:g} s (median) | {ses} s | {'yes' if ses < TARGET_S else '**no**'} |",
              f"| any page under {TARGET_S:g} s as the first request after a worker commit (median, worst page) | "
              f"{worst_live} s | {'yes' if worst_live < TARGET_S else '**no**'} |", ""]
    return "\n".join(lines)


def rewrite_markdown(mode: str = "full") -> None:
    """Regenerate bench/results/ui-<mode>.md from its .json (after a change to the table's wording)."""
    from bench.common import RESULTS

    result = json.loads((RESULTS / f"ui-{mode}.json").read_text())
    (RESULTS / f"ui-{mode}.md").write_text(markdown(result))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    built = SCRATCH / f"ui-lake-{args.sessions}"
    info = build(built, args.sessions)
    # The run writes into the lake (as a worker would): a copy, so the build stays cached.
    lake = SCRATCH / "ui-lake-run"
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(built, lake)
    m = machine()
    pages = run(lake, args.repeats)
    baselines = _baselines(lake, "bench-0-s0-000123", args.repeats)
    result = {"machine": m, "lake": info, "repeats": args.repeats, "pages": pages, "baselines": baselines}
    report("ui", "full" if args.sessions >= 10_000 else "quick", result, markdown(result), save=not args.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
