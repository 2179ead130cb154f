"""Load generator: Crafter-sized rollout events published at full speed or at a fixed turn rate.

`python -m bench.loadgen --bootstrap HOST:PORT --topic T --prefix full --sessions N [--rate TURNS_S]`

Events come from streams.devtools.synthetic (20 turns x 4 messages, a 600-character observation), encoded
once as templates; each record gets its session id and its `ts` = the moment it is handed to the
producer, so the lake's `ts` column carries the send time and freshness can be read off Delta.
Prints one JSON line: records, turns, first/last send time, acked time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timezone

from streams.devtools.synthetic import make_sessions

TS = "2000-01-01T00:00:00.000000+00:00"
INTERLEAVE = 64  # sessions played at once, as a task app pool would


def templates(turns: int, pool: int = 50, obs_chars: int = 600) -> list[tuple[bytes, list[bytes]]]:
    """(template session id, event JSON bytes with a placeholder ts) per template session."""
    out = []
    for sess in make_sessions(pool, turns, seed=7, obs_chars=obs_chars, run_id="tpl"):
        events = []
        for e in sess.events:
            e = dict(e, ts=TS)
            events.append(json.dumps(e, separators=(",", ":")).encode())
        out.append((sess.session_id.encode(), events))
    return out


def now_iso() -> bytes:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").encode()


def records(prefix: str, n_sessions: int, turns: int):
    """Yield (key, value-template, is_turn) in an interleaved order: INTERLEAVE sessions at a time."""
    tpl = templates(turns)
    ts = TS.encode()
    for g in range(0, n_sessions, INTERLEAVE):
        group = []
        for i in range(g, min(g + INTERLEAVE, n_sessions)):
            sid, events = tpl[i % len(tpl)]
            new = f"{prefix}-{i:07d}".encode()
            group.append((new, [e.replace(sid, new) for e in events]))
        depth = max(len(ev) for _, ev in group)
        for j in range(depth):
            for sid, events in group:
                if j < len(events):
                    value = events[j]
                    yield sid, value, value.startswith(b'{"schema_version":1,"type":"turn"'), ts


async def publish(bootstrap: str, topic: str, prefix: str, n_sessions: int, turns: int, rate: float | None) -> dict:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024, client_id="bench-loadgen",
    )
    await producer.start()
    sent = n_turns = 0
    pending: list[asyncio.Future] = []
    t_first = time.time()
    try:
        t0 = time.monotonic()
        for key, value, is_turn, ts in records(prefix, n_sessions, turns):
            if rate:
                # Pace by turns: hold until the schedule allows this turn.
                due = t0 + n_turns / rate
                delay = due - time.monotonic()
                if delay > 0.005:
                    await asyncio.sleep(delay)
            pending.append(await producer.send(topic, value=value.replace(ts, now_iso()), key=key))
            sent += 1
            n_turns += is_turn
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        t_last = time.time()
        await asyncio.gather(*pending)
        t_acked = time.time()
    finally:
        await producer.stop()
    return {"records": sent, "turns": n_turns, "first_send": t_first, "last_send": t_last, "acked": t_acked}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--prefix", default="full")
    p.add_argument("--sessions", type=int, required=True)
    p.add_argument("--turns", type=int, default=20)
    p.add_argument("--rate", type=float, default=None, help="turns/s; default: full speed")
    args = p.parse_args(argv)
    out = asyncio.run(publish(args.bootstrap, args.topic, args.prefix, args.sessions, args.turns, args.rate))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
