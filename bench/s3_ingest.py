"""Ingest on an S3 lake next to a local-disk lake, measured in the same run.

    python -m bench.s3_ingest --quick     # about three minutes
    python -m bench.s3_ingest             # more sessions

One fresh Tansu broker and one S3-API server (moto's server mode, its own process, on localhost)
for the run. Each case gets a fresh 8-partition topic and a fresh lake; the load generator
publishes N sessions x 20 turns at full speed while 1 or 2 `faust -A streams.worker.app worker`
processes (one consumer group, ready before the first send) ingest. Rate = turns / (last `turns`
commit - first send), the commit time read from the Delta log the same way for both stores
(as bench.ingest's turns/s).

moto is a Python server on the same 2 CPUs as the workers: an S3 API, not an S3 performance
model. The S3/local ratio here is a floor for what a real store (MinIO, AWS) gives.
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

from bench.common import REPO, SCRATCH, bench_parser, machine, machine_md, mode_conf, report

TURNS = 20
PARTITIONS = 8
MODES = {"quick": {"sessions": 1000}, "full": {"sessions": 3000}}
CASES = [("local", 1), ("s3", 1), ("local", 2), ("s3", 2)]


def _turns_commits(lake: str) -> list[tuple[float, int]]:
    """(commit time s, rows added) of every `turns` append, oldest first."""
    from deltalake import DeltaTable

    from lake.tables import table_uri

    out = []
    for h in DeltaTable(table_uri(lake, "turns")).history():
        rows = (h.get("operationMetrics") or {}).get("num_added_rows")
        if h.get("operation") == "WRITE" and rows:
            out.append((h["timestamp"] / 1000, int(rows)))
    return sorted(out)


def _turn_count(lake: str) -> int:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from lake.tables import table_uri

    try:
        return DeltaTable(table_uri(lake, "turns")).count()
    except TableNotFoundError:
        return 0


def run_case(store: str, workers: int, conf: dict[str, Any], broker: Any, s3: Any, workdir: Path) -> dict[str, Any]:
    from schemas.kafka import rollout_topics
    from streams.devtools.broker import create_topics, free_port

    name = f"{store}-{workers}w"
    shutil.rmtree(workdir / name, ignore_errors=True)
    (workdir / name).mkdir(parents=True)
    lake = str(workdir / name / "lake") if store == "local" else f"s3://{s3.bucket()}/lake"
    topic = f"bench-{name}"
    create_topics(broker.bootstrap_servers, rollout_topics(topic, PARTITIONS))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ROLLOUT_", "LAKE_", "BATCH_", "AWS_"))}
    env = dict(base, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, ROLLOUT_TOPIC=topic, LAKE_URI=lake,
               WORKER_GROUP=f"bench-{name}", TOPIC_PARTITIONS=str(PARTITIONS), PYTHONUNBUFFERED="1",
               **(s3.env if store == "s3" else {}))
    procs, logs = [], []
    for i in range(workers):
        logs.append(workdir / name / f"worker-{i}.log")
        with open(logs[-1], "ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "faust", "-A", "streams.worker.app", "worker", "-l", "info"],
                                          cwd=REPO, env=dict(env, WEB_PORT=str(free_port())), stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    try:
        _wait(lambda: all("Worker ready" in p.read_text(errors="replace") for p in logs), 120, f"{name} ready", procs, logs)
        if workers > 1:  # each holds its share of the partitions: the group has settled
            _wait(lambda: all(p.read_text(errors="replace").count("assigned [") >= 1 for p in logs), 120,
                  f"{name} partitions assigned", procs, logs)
        time.sleep(3)
        gen = subprocess.run([sys.executable, "-m", "bench.loadgen", "--bootstrap", broker.bootstrap_servers,
                              "--topic", topic, "--prefix", "full", "--sessions", str(conf["sessions"]),
                              "--turns", str(TURNS)], cwd=REPO, capture_output=True, text=True, check=True)
        sent = json.loads(gen.stdout.strip().splitlines()[-1])
        _wait(lambda: _turn_count(lake) >= sent["turns"], 900, f"{name}: {sent['turns']} turns in the lake", procs, logs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    commits = _turns_commits(lake)
    span = commits[-1][0] - sent["first_send"]
    producer_s = sent["acked"] - sent["first_send"]
    return {"case": name, "store": store, "workers": workers, "turns": sent["turns"],
            "turns_per_s": round(sent["turns"] / span), "seconds": round(span, 2),
            "producer_turns_per_s": round(sent["turns"] / max(producer_s, 1e-9)), "turns_commits": len(commits)}


def _wait(pred: Any, timeout: float, what: str, procs: list[Any], logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.3)
    tail = "\n".join(p.read_text(errors="replace")[-1500:] for p in logs)
    raise RuntimeError(f"timed out or a worker exited waiting for {what}\n{tail}")


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Ingest: S3 lake vs local-disk lake ({result['mode']} mode)\n", machine_md(result["machine"]),
             f"- workload: {result['workload']}\n",
             "| case | store | workers | turns | turns/s | vs local, same workers | producer turns/s | turns commits | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    rates = {(r["store"], r["workers"]): r["turns_per_s"] for r in result["cases"]}
    for r in result["cases"]:
        local = rates.get(("local", r["workers"]))
        ratio = f"{r['turns_per_s'] / local:.2f}" if local and r["turns_per_s"] else "-"
        lines.append(f"| {r['case']} | {r['store']} | {r['workers']} | {r['turns']:,} | {r['turns_per_s'] or '-':,} | "
                     f"{ratio} | {r['producer_turns_per_s']:,} | {r['turns_commits']} | {r['seconds']} |")
    lines.append("")
    lines.append("moto (the S3 server here) is a Python process on the same CPUs: the S3 numbers are a floor.\n")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = bench_parser("python -m bench.s3_ingest", __doc__, quick="about three minutes",
                     sessions="sessions (20 turns each) per case")
    args = p.parse_args(argv)
    mode, conf = mode_conf(args, MODES)
    from streams.devtools.broker import EmbeddedBroker, free_port
    from tests.conftest import S3Server

    workdir = SCRATCH / "s3_ingest"
    workdir.mkdir(parents=True, exist_ok=True)
    mach = machine()
    cases = []
    with EmbeddedBroker(port=free_port(), log_path=workdir / "tansu.log") as broker, \
            S3Server(workdir / "moto.log") as s3:
        os.environ.update(s3.env)  # this process reads the S3 lakes' Delta logs too
        for store, workers in CASES:
            r = run_case(store, workers, conf, broker, s3, workdir)
            print(json.dumps(r), file=sys.stderr, flush=True)
            cases.append(r)
    result = {"mode": mode, "machine": mach, "cases": cases,
              "workload": f"{conf['sessions']} sessions x {TURNS} turns x 4 chat messages at full speed (bench.loadgen) "
                          f"into 1 or 2 faust workers in one group, ready before the first send; {PARTITIONS} partitions; "
                          "worker defaults"}
    report("s3-ingest", mode, result, markdown(result), save=not args.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
