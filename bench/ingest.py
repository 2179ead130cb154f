"""Ingestion benchmark: the Faust worker vs plain aiokafka consumers, on the embedded broker.

    python -m bench.ingest --quick      # about a minute
    python -m bench.ingest              # full mode

Each contender gets a fresh Tansu broker (in-memory, so runs do not pile up in RAM), a fresh
4-partition topic and a fresh lake under bench/out/. Two phases per contender:
1. full speed: the load generator (its own process) publishes N sessions x 20 turns as fast as
   aiokafka can, while the contender ingests; sustained turns/s = turns / (last Delta commit
   holding a phase-1 turn - first send).
2. paced: a fixed turn rate for a few seconds, well under every contender's capacity, for the
   freshness an operator sees in steady state.
Freshness (event-to-queryable) of a turn = the commit timestamp, in the Delta log, of the
`turns` commit that holds it - its `ts`, which the load generator set at send time.

Contenders: `faust` (`faust -A streams.worker.app worker`), `floor` (plain aiokafka + parse_event +
RowBatch + LakeWriter: the baseline) and `ingestor` (plain aiokafka + the worker's Ingestor, no
Faust). Results: bench/results/ingest-<mode>.json and .md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    SCRATCH,
    bench_parser,
    delta_commits,
    machine,
    machine_md,
    mode_conf,
    peak_rss_mib,
    percentile,
    report,
)
from streams.devtools.broker import free_port

TURNS = 20
RECORDS_PER_SESSION = TURNS + 3 + 0.2  # start, turns, end, outcome reward, a judgment every 5th
MESSAGES_PER_TURN = 4
TARGET_TURNS_S = 20_000
TARGET_P95_S = 5.0
TARGET_RATIO = 0.5

MODES = {
    # full-speed sessions, paced turns/s, paced seconds
    "quick": {"sessions": 600, "paced_rate": 250, "paced_s": 8, "contenders": ["faust", "floor"]},
    "full": {"sessions": 6000, "paced_rate": 250, "paced_s": 40, "contenders": ["faust", "floor", "ingestor"]},
}


def _env(bootstrap: str, topic: str, lake: Path, group: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ROLLOUT_", "LAKE_", "BATCH_", "FAULT_"))}
    env.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, ROLLOUT_TOPIC=topic, LAKE_URI=str(lake), WORKER_GROUP=group,
               TOPIC_PARTITIONS="4", PYTHONUNBUFFERED="1",
               # Faust binds its web port even with the web disabled; 6066 may be taken by another worker.
               WEB_PORT=str(free_port()))
    return env


def _start(contender: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    # "faust:KEY=VAL,KEY=VAL" runs the worker with extra environment (Faust reads its settings'
    # env names, e.g. PRODUCER_LINGER): what-if variants without touching the product.
    contender, _, extra = contender.partition(":")
    env = dict(env, **dict(kv.split("=", 1) for kv in extra.split(",") if kv))
    if contender == "faust":
        cmd = [sys.executable, "-m", "faust", "-A", "streams.worker.app", "worker", "-l", "info"]
    else:
        cmd = [sys.executable, "-m", "bench.plain_consumer", "--mode", contender]
    fh = open(log, "ab")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    fh.close()
    return proc


def _wait(pred, timeout: float, what: str, log: Path | None = None, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def _turn_rows(lake: Path) -> int:
    return sum(a["rows"] or 0 for c in delta_commits(lake / "turns") for a in c["adds"]) if (lake / "turns" / "_delta_log").exists() else 0


def _profiler(pid: int, out: Path, seconds: int) -> subprocess.Popen:
    """py-spy attached to the contender for the full-speed phase (raw folded stacks)."""
    spy = str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([spy, "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "50",
                             "-d", str(seconds), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _loadgen(bootstrap: str, topic: str, prefix: str, sessions: int, rate: float | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bench.loadgen", "--bootstrap", bootstrap, "--topic", topic, "--prefix", prefix,
           "--sessions", str(sessions), "--turns", str(TURNS)]
    if rate:
        cmd += ["--rate", str(rate)]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)


def run_contender(contender: str, conf: dict[str, Any], workdir: Path, profile: bool) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from schemas.kafka import rollout_topics
    from streams.devtools.broker import EmbeddedBroker, create_topics, free_port

    slug = contender.replace(":", "_").replace("=", "-").replace(",", "_")
    lake = workdir / slug / "lake"
    shutil.rmtree(workdir / slug, ignore_errors=True)
    lake.mkdir(parents=True)
    log = workdir / slug / "worker.log"
    topic = "bench-rollouts"
    with EmbeddedBroker(port=free_port(), log_path=workdir / slug / "tansu.log") as broker:
        create_topics(broker.bootstrap_servers, rollout_topics(topic, 4))
        env = _env(broker.bootstrap_servers, topic, lake, f"bench-{contender}")
        prof_path = workdir / slug / "pyspy.txt" if profile else None
        proc = _start(contender, env, log)
        try:
            ready = "assigned [" if contender.startswith("faust") else "ready"
            _wait(lambda: ready in log.read_text(errors="replace"), 90, f"{contender} to join the group", log, proc)
            if contender.startswith("faust"):
                # The assignment log comes before Faust's own recovery; give it a moment to settle.
                _wait(lambda: "Worker ready" in log.read_text(errors="replace"), 60, "faust ready", log, proc)
            phases = {}
            expected = 0
            for prefix, sessions, rate in (("full", conf["sessions"], None),
                                           ("paced", int(conf["paced_rate"] * conf["paced_s"] / TURNS), conf["paced_rate"])):
                t0 = time.time()
                spy = _profiler(proc.pid, prof_path, conf["profile_s"]) if prof_path and prefix == "full" else None
                gen = _loadgen(broker.bootstrap_servers, topic, prefix, sessions, rate)
                out, _ = gen.communicate(timeout=900)
                if gen.returncode:
                    raise RuntimeError(f"load generator failed ({gen.returncode})")
                sent = json.loads(out.strip().splitlines()[-1])
                expected += sent["turns"]
                _wait(lambda: _turn_rows(lake) >= expected, 900, f"{expected} turns in the lake", log, proc)
                sent["all_in"] = time.time()
                sent["wall_s"] = sent["all_in"] - t0
                phases[prefix] = sent
                if spy is not None:
                    spy.wait(conf["profile_s"] + 60)
                if proc.poll() is not None:
                    raise RuntimeError(f"{contender} exited ({proc.returncode})\n{log.read_text()[-3000:]}")
            rss = peak_rss_mib(proc.pid)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    # Freshness and throughput from the Delta log: commit time vs each turn's send time.
    per_phase: dict[str, list[float]] = {"full": [], "paced": []}
    last_commit = {"full": 0.0, "paced": 0.0}
    turns_commits = delta_commits(lake / "turns")
    for c in turns_commits:
        for a in c["adds"]:
            t = pq.read_table(lake / "turns" / a["path"], columns=["session_id", "ts"])
            sids = t.column("session_id").to_pylist()
            ts = [x.timestamp() for x in t.column("ts").to_pylist()]
            for sid, sent in zip(sids, ts):
                phase = sid.split("-", 1)[0]
                per_phase[phase].append(c["ts"] - sent)
                last_commit[phase] = max(last_commit[phase], c["ts"])
    full = phases["full"]
    dur = last_commit["full"] - full["first_send"]
    turns_s = full["turns"] / dur
    tables = {}
    for name in ("turns", "messages", "rewards", "sessions"):
        commits = [c for c in delta_commits(lake / name) if c["op"] != "CREATE TABLE"]
        sizes = [a["size"] for c in commits for a in c["adds"]]
        tables[name] = {
            "commits": len(commits),
            "files": len(sizes),
            "file_mib_median": round((percentile(sizes, 0.5) or 0) / 2**20, 3),
            "file_mib_max": round(max(sizes, default=0) / 2**20, 3),
            "bytes_total_mib": round(sum(sizes) / 2**20, 1),
        }
    span = [c["ts"] for c in turns_commits if c["op"] != "CREATE TABLE" and c["ts"] >= full["first_send"] and c["ts"] <= last_commit["full"]]
    lat = {}
    for phase, values in per_phase.items():
        lat[phase] = {f"p{int(q * 100)}_s": round(percentile(values, q), 3) for q in (0.5, 0.95, 0.99)} if values else {}
        lat[phase]["max_s"] = round(max(values), 3) if values else None
    return {
        "contender": contender,
        "turns_per_s": round(turns_s),
        "records_per_s": round(turns_s * RECORDS_PER_SESSION / TURNS),
        "messages_per_s": round(turns_s * MESSAGES_PER_TURN),
        "full_speed": {"turns": full["turns"], "records": full["records"], "seconds": round(dur, 2),
                       "producer_s": round(full["acked"] - full["first_send"], 2),
                       "producer_turns_per_s": round(full["turns"] / max(full["acked"] - full["first_send"], 1e-9))},
        "paced": {"turns": phases["paced"]["turns"], "rate_turns_s": conf["paced_rate"]},
        "freshness_full_speed": lat["full"],
        "freshness_paced": lat["paced"],
        "peak_rss_mib": rss,
        "delta_commits_per_s": round(len(span) / dur, 2) if dur else None,
        "tables": tables,
        "lake": str(lake),
    }


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    base = result["baseline"]
    lines = [f"# Ingest benchmark ({result['mode']} mode)\n", machine_md(m),
             f"- workload: {result['workload']}\n",
             "| contender | turns/s | records/s | chat msgs/s | vs floor | fresh p50/p95/p99 s (paced) | fresh p50/p95/p99 s (full speed) | peak RSS MiB | turns commits/s | median file MiB (messages) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["contenders"]:
        fp, ff = r["freshness_paced"], r["freshness_full_speed"]
        lines.append(
            f"| {r['contender']} | {r['turns_per_s']:,} | {r['records_per_s']:,} | {r['messages_per_s']:,} | "
            f"{r['turns_per_s'] / base['turns_per_s']:.2f} | {fp.get('p50_s')}/{fp.get('p95_s')}/{fp.get('p99_s')} | "
            f"{ff.get('p50_s')}/{ff.get('p95_s')}/{ff.get('p99_s')} | {r['peak_rss_mib']} | {r['delta_commits_per_s']} | "
            f"{r['tables']['messages']['file_mib_median']} |")
    lines.append("")
    lines.append("| target | value | met |")
    lines.append("|---|---|---|")
    for t in result["targets"]:
        lines.append(f"| {t['name']} | {t['value']} | {'yes' if t['met'] else 'no'} |")
    lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = bench_parser("python -m bench.ingest", __doc__, quick="about a minute", sessions="full-speed sessions (20 turns each)")
    p.add_argument("--contenders", default=None, help="comma list of faust,floor,ingestor")
    p.add_argument("--profile", type=int, default=0, metavar="SECONDS",
                   help="py-spy each contender for SECONDS of the full-speed phase (bench/out/ingest/*/pyspy.txt)")
    args = p.parse_args(argv)
    mode, conf = mode_conf(args, MODES)
    conf["profile_s"] = args.profile
    if args.contenders:
        conf["contenders"] = args.contenders.split(",")
    if "floor" not in conf["contenders"]:
        conf["contenders"].append("floor")
    mach = machine()
    workdir = SCRATCH / "ingest"
    results = []
    for contender in conf["contenders"]:
        r = run_contender(contender, conf, workdir, args.profile)
        print(json.dumps({k: v for k, v in r.items() if k != "tables"}), file=sys.stderr, flush=True)
        results.append(r)
    base = next(r for r in results if r["contender"] == "floor")
    faust = next((r for r in results if r["contender"] == "faust"), None)
    targets = []
    if faust:
        ratio = faust["turns_per_s"] / base["turns_per_s"]
        p95 = faust["freshness_paced"].get("p95_s")
        targets = [
            {"name": f"faust turns/s per worker >= {TARGET_TURNS_S:,}", "value": faust["turns_per_s"], "met": faust["turns_per_s"] >= TARGET_TURNS_S},
            {"name": f"faust p95 freshness (paced) <= {TARGET_P95_S} s", "value": p95, "met": p95 is not None and p95 <= TARGET_P95_S},
            {"name": f"faust p95 freshness (full speed) <= {TARGET_P95_S} s", "value": faust["freshness_full_speed"].get("p95_s"),
             "met": (faust["freshness_full_speed"].get("p95_s") or 1e9) <= TARGET_P95_S},
            {"name": f"faust / floor >= {TARGET_RATIO}", "value": round(ratio, 3), "met": ratio >= TARGET_RATIO},
        ]
    result = {
        "bench": "ingest", "mode": mode, "machine": mach,
        "workload": (f"{conf['sessions']} sessions x {TURNS} turns x {MESSAGES_PER_TURN} chat messages at full speed "
                     f"(~1.3 KB per turn record, 600-char observation), then {conf['paced_rate']} turns/s for "
                     f"{conf['paced_s']} s; 4 partitions; worker defaults (BATCH_MAX_ROWS 50000, BATCH_MAX_LATENCY_S 1)"),
        "baseline": {"contender": "floor", "turns_per_s": base["turns_per_s"]},
        "contenders": results, "targets": targets,
    }
    report("ingest", mode, result, markdown(result), save=not args.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
