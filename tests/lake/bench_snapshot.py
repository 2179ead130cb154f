"""Snapshot throughput on a synthetic lake: `python -m tests.lake.bench_snapshot --sessions 10000`.

Writes sessions/turns/messages with the worker's LakeWriter in bulk Arrow batches (10 turns x
4 messages per session, crafter-sized text), then times `lake snapshot` and reports messages/s
and peak RSS of the snapshot process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

from lake.tables import MESSAGES, SCHEMAS, SESSIONS, TURNS
from lake.writer import LakeWriter

TOPIC = "rollout-events"


def build(uri: str, sessions: int, turns: int = 10, chunk: int = 2000) -> int:
    w = LakeWriter(uri)
    w.ensure_tables()
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    system = "You are playing Crafter. " * 12
    obs = "=== CRAFTER GAME STATE === " + "grass tree water stone " * 20
    tools = json.dumps([{"type": "function", "function": {"name": "act", "parameters": {"type": "object"}}}])
    offset = 0
    total = 0
    for start in range(0, sessions, chunk):
        srows, trows, mrows = [], [], []
        for i in range(start, min(start + chunk, sessions)):
            sid = f"s{i:07d}"
            srows.append({"session_id": sid, "env_name": "crafter", "policy_name": "react", "model": "m",
                          "task_id": f"seed-{i % 5000}", "split": "train", "seed": i, "run_id": "bench",
                          "status": "terminated", "finalized": True, "num_turns": turns, "turns_received": turns,
                          "missing_turns": 0, "started_at": t0 + timedelta(seconds=i), "total_reward": float(i % 7),
                          "achievements": ["collect_wood"], "achievements_count": 1, "tools": tools,
                          "metadata": "{}", "last_offset": offset})
            for t in range(turns):
                offset += 1
                src = {"kafka_topic": TOPIC, "kafka_partition": 0, "kafka_offset": offset}
                ts = t0 + timedelta(seconds=i, milliseconds=t)
                trows.append({"session_id": sid, "turn": t, "reward": 0.1, "achievements": [], "valid": True,
                              "done": t == turns - 1, "num_messages": 4, "ts": ts, "event_id": f"{sid}-{t}",
                              "metadata": "{}", **src})
                calls = json.dumps([{"id": f"c{t}", "type": "function",
                                     "function": {"name": "act", "arguments": '{"actions": ["move_left"]}'}}])
                for j, (role, content, tc, tcid) in enumerate([
                    ("system", system, None, None), ("user", f"{obs} step {t}", None, None),
                    ("assistant", None, calls, None), ("tool", "ok", None, f"c{t}")]):
                    mrows.append({"session_id": sid, "turn": t, "idx_in_turn": j, "role": role, "content": content,
                                  "content_is_parts": False, "tool_calls": tc, "tool_call_id": tcid, "name": None,
                                  "ts": ts, "event_id": f"{sid}-{t}", **src})
        offsets = {(TOPIC, 0): offset}
        w.append(TURNS, pa.Table.from_pylist(trows, schema=SCHEMAS[TURNS]), offsets=offsets)
        w.append(MESSAGES, pa.Table.from_pylist(mrows, schema=SCHEMAS[MESSAGES]), offsets=offsets)
        w.upsert_sessions(pa.Table.from_pylist(srows, schema=SCHEMAS[SESSIONS]))
        total += len(mrows)
    return total


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sessions", type=int, default=10_000)
    p.add_argument("--lake", default=None)
    p.add_argument("--granularity", default="session")
    args = p.parse_args()
    uri = args.lake or tempfile.mkdtemp(prefix="bench-lake-")
    if not Path(uri, "messages").exists():
        t = time.perf_counter()
        n = build(uri, args.sessions)
        print(f"built {n} messages in {time.perf_counter() - t:.1f}s at {uri}", file=sys.stderr)
    out = tempfile.mkdtemp(prefix="bench-snap-")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lake", "snapshot", "--lake", uri, "--out", out, "--force",
                    "--granularity", args.granularity, "--no-progress"], check=True)
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    manifest = json.loads(Path(out, "manifest.json").read_text())
    msgs = manifest["counts"]["messages"]
    size = sum(f["bytes"] for f in manifest["files"].values())
    print(json.dumps({"sessions": manifest["counts"]["sessions_kept"], "messages_written": msgs,
                      "wall_s": round(wall, 2), "messages_per_s": round(msgs / wall),
                      "jsonl_mb": round(size / 1e6, 1), "peak_rss_mib": round(rss)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
