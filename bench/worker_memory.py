"""Worker memory: open sessions and RSS after 5,000 vs 50,000 finished sessions, then a restart.

    python -m bench.worker_memory            # 50,000 sessions, a few minutes
    python -m bench.worker_memory --sessions 10000 --no-save

A real `faust -A streams.worker.app worker` on a fresh embedded broker and lake. Small sessions (start,
two turns, end, outcome reward) are published in ten equal chunks; after each, the benchmark waits
until every session row is in the lake and the worker's `rollout_lake_open_sessions` metric is
back near zero, then reads the worker's RSS from /proc. Finally the worker is stopped, a new one
started on the same lake, and the time until it has ingested one new session is measured.
Results: bench/results/worker-memory.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from deltalake import DeltaTable

from bench.common import REPO, SCRATCH, machine, machine_md, report
from lake.tables import table_uri
from schemas.kafka import rollout_topics
from streams.devtools.broker import EmbeddedBroker, create_topics, free_port
from streams.devtools.synthetic import make_sessions, to_records


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def _metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else None


def _open_sessions(port: int) -> float:
    value = _metric(port, "rollout_lake_open_sessions")
    return float("inf") if value is None else value


def _sessions_in(lake: Path) -> int:
    try:
        return DeltaTable(table_uri(str(lake), "sessions")).count()
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def _publish(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
        await producer.start()
        try:
            for i in range(0, len(records), 5000):
                futures = [await producer.send(topic, value=v, key=k) for k, v in records[i : i + 5000]]
                await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def _wait(pred, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def run(total: int) -> dict:
    out = SCRATCH / "worker-memory"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    lake = out / "lake"
    broker = EmbeddedBroker(port=free_port(), log_path=out / "tansu.log").start()
    procs: list[subprocess.Popen] = []
    try:
        topic = "rollouts"
        create_topics(broker.bootstrap_servers, rollout_topics(topic, 4))
        port = free_port()
        env = {**__import__("os").environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "ROLLOUT_TOPIC": topic,
               "LAKE_URI": str(lake), "WORKER_GROUP": "bench-memory", "WEB_PORT": str(port), "EVICT_AFTER_S": "1",
               "TIMER_INTERVAL_S": "0.5", "PYTHONUNBUFFERED": "1"}

        def start() -> subprocess.Popen:
            log = open(out / f"worker-{len(procs)}.log", "ab")
            proc = subprocess.Popen([sys.executable, "-m", "faust", "-A", "streams.worker.app", "worker", "-l", "info"],
                                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(proc)
            return proc

        worker = start()
        # Ten equal chunks, each ingested before the next is published: every chunk makes
        # batches of the same size, so RSS after chunk 1 and after chunk 10 differ by history only.
        phases = []
        chunk = max(total // 10, 1)
        for i in range(10):
            upto = chunk * (i + 1)
            sessions = make_sessions(chunk, 2, seed=i, obs_chars=80, judgment_every=0, run_id=f"mem-{i}")
            t0 = time.monotonic()
            _publish(broker.bootstrap_servers, topic, to_records(sessions, seed=1, shuffle=False))
            _wait(lambda: _sessions_in(lake) >= upto, 1800, f"{upto} sessions in the lake")
            ingest_s = time.monotonic() - t0
            _wait(lambda: _open_sessions(port) <= 10, 120, "open sessions back near 0")
            time.sleep(2)
            phases.append({"sessions": upto, "open_sessions": _metric(port, "rollout_lake_open_sessions"),
                           "rss_mib": round(_rss_mib(worker.pid), 1), "publish_and_ingest_s": round(ingest_s, 1)})
            print(phases[-1], file=sys.stderr)
        worker.terminate()
        worker.wait(60)
        restarted = start()
        t0 = time.monotonic()
        probe = make_sessions(1, 1, seed=99, run_id="mem-after-restart")
        _publish(broker.bootstrap_servers, topic, to_records(probe, shuffle=False))
        resume_s = _wait(lambda: _sessions_in(lake) >= total + 1, 120, "the restarted worker to ingest a new session")
        restart = {"seconds_to_ingest_again": round(resume_s, 1), "rss_mib": round(_rss_mib(restarted.pid), 1)}
        return {"phases": phases, "restart": restart, "rss_growth_mib": round(phases[-1]["rss_mib"] - phases[0]["rss_mib"], 1)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker_memory", description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=50_000)
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    m = machine()
    result = run(args.sessions)
    result["machine"] = m
    first, last = result["phases"][0], result["phases"][-1]
    ok_growth = result["rss_growth_mib"] <= 100
    ok_open = (last["open_sessions"] or 0) <= 10
    ok_restart = result["restart"]["seconds_to_ingest_again"] <= 15
    md = (
        "# Worker memory after finished sessions\n\n" + machine_md(m) + "\n"
        "| finished sessions | open sessions in memory | worker RSS | publish + ingest |\n|---|---|---|---|\n"
        + "".join(f"| {ph['sessions']:,} | {ph['open_sessions']:.0f} | {ph['rss_mib']} MiB | {ph['publish_and_ingest_s']} s |\n" for ph in result["phases"])
        + f"\n| target | result | met |\n|---|---|---|\n"
        f"| open sessions back near zero after {last['sessions']:,} | {last['open_sessions']:.0f} | {'yes' if ok_open else '**no**'} |\n"
        f"| RSS within 100 MiB of the {first['sessions']:,}-session figure | {result['rss_growth_mib']:+} MiB | {'yes' if ok_growth else '**no**'} |\n"
        f"| restarted worker ingesting again within 15 s | {result['restart']['seconds_to_ingest_again']} s | {'yes' if ok_restart else '**no**'} |\n"
    )
    report("worker-memory", "full" if args.sessions >= 50_000 else "quick", result, md, save=not args.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
