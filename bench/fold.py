"""Session assembly on the hot path: `fold_event` per record, `session_row` per dirty session,
and the memory of one session's state in the open-sessions cache.

    python -m bench.fold                       # this tree vs the assembly.py of --against (HEAD)
    python -m bench.fold --against 1a00aab --events 200000 --no-save

In-process, no broker or lake: the worker's `fold_event` folds parsed synthetic sessions (start,
20 turns, end, outcome reward, a judgment for every fifth) the way the `Ingestor` does (state from
the cache, the new state put back when the event changed it), then `session_row` builds one row
per state. The `--against` revision's `streams/worker/assembly.py` is loaded from git next to the
working tree's and both run in alternating rounds on the same events, so the ratio is what to
read. Times are the process's CPU time (one thread), which other jobs on shared cores move less
than wall time. Memory: tracemalloc over 10,000 states kept, open (start + 10 turns) and finished.
Results: bench/results/fold-<quick|full>.{json,md}.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.common import REPO, machine, machine_md, report

ROW_KW = dict(reward_grace_s=60.0, idle_timeout_s=600.0)


def _load_assembly(rev: str | None) -> ModuleType:
    if rev is None:
        import streams.worker.assembly as mod

        return mod
    source = subprocess.run(["git", "show", f"{rev}:streams/worker/assembly.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="bench-fold-")) / f"assembly_{rev}.py"
    path.write_text(source)
    name = f"_bench_assembly_{rev}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = mod  # dataclasses look the module up while the class is built
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _events(n_events: int, turns: int) -> list[Any]:
    from schemas import parse_event
    from streams.devtools.synthetic import make_sessions

    per_session = turns + 3.2  # start, turns, end, reward, a judgment for every fifth
    sessions = make_sessions(int(n_events / per_session) + 1, turns, seed=7, obs_chars=40)
    import json

    events = [parse_event(json.dumps(e).encode()) for s in sessions for e in s.events]
    return events[:n_events]


def _fold_all(mod: ModuleType, events: list[Any]) -> dict[str, Any]:
    fold_event = mod.fold_event
    states: dict[str, Any] = {}
    for offset, event in enumerate(events):
        sid = event.session_id
        fold = fold_event(states.get(sid), event, partition=0, offset=offset, record_ms=1_000_000 + offset,
                          topic="rollouts")
        if fold.changed:
            states[sid] = fold.state
    return states


def _time_fold(mod: ModuleType, events: list[Any]) -> tuple[float, float]:
    gc.collect()
    t0 = time.process_time()
    states = _fold_all(mod, events)
    t1 = time.process_time()
    session_row = mod.session_row
    for state in states.values():
        session_row(state, now_ms=2_000_000_000, **ROW_KW)
    t2 = time.process_time()
    return t1 - t0, (t2 - t1) / max(len(states), 1)


def _bytes_per_state(mod: ModuleType, events: list[Any]) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = list(_fold_all(mod, events).values())  # the states only, not the dict that held them
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(kept)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fold", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--against", default="HEAD", help="git revision whose assembly.py is the baseline (default HEAD)")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--states", type=int, default=10_000, help="states kept for the memory figure")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="50k events, 2k states, 3 rounds")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.events, args.states, args.rounds = 50_000, 2_000, 3
    m = machine()
    contenders = {"baseline": _load_assembly(args.against), "this tree": _load_assembly(None)}
    turns = 20
    all_events = _events(max(args.events, args.states * (turns + 4)), turns)
    events = all_events[: args.events]
    # Memory: the states of the first `states` sessions, open (start + 10 turns) and finished.
    ids = list(dict.fromkeys(e.session_id for e in all_events))[: args.states]
    wanted = set(ids)
    whole = [e for e in all_events if e.session_id in wanted]
    open_ = [e for e in whole if e.type == "session_start" or (e.type == "turn" and e.turn < 10)]

    fold_s: dict[str, list[float]] = {k: [] for k in contenders}
    row_us: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for name, mod in contenders.items():
            f, r = _time_fold(mod, events)
            fold_s[name].append(f)
            row_us[name].append(r * 1e6)
    memory = {name: {"open": _bytes_per_state(mod, open_), "finished": _bytes_per_state(mod, whole)}
              for name, mod in contenders.items()}

    base, base_best = statistics.median(fold_s["baseline"]), min(fold_s["baseline"])
    rows = []
    for name in contenders:
        med = statistics.median(fold_s[name])
        rows.append({
            "contender": name, "fold_s_median": round(med, 4), "fold_s_all": [round(x, 4) for x in fold_s[name]],
            "events_per_s": round(len(events) / med), "vs_baseline": round(base / med, 3),
            "vs_baseline_best_round": round(base_best / min(fold_s[name]), 3),
            "session_row_us": round(statistics.median(row_us[name]), 2),
            "bytes_per_open_state": round(memory[name]["open"]), "bytes_per_finished_state": round(memory[name]["finished"]),
        })
    result = {"machine": m, "against": args.against, "events": len(events), "states": args.states,
              "rounds": args.rounds, "rows": rows}
    md = [f"# fold_event: this tree vs {args.against}\n", machine_md(m),
          f"- {len(events):,} parsed events ({turns}-turn synthetic sessions), {args.rounds} alternating rounds "
          f"(median; CPU time); memory: tracemalloc over {args.states:,} states\n",
          "| contender | fold events/s | vs baseline (median / best round) | session_row | bytes per open state "
          "(start + 10 turns) | bytes per finished state |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['contender']} | {r['events_per_s']:,} | {r['vs_baseline']:.2f} / {r['vs_baseline_best_round']:.2f} | {r['session_row_us']:.1f} us "
                  f"| {r['bytes_per_open_state']:,} | {r['bytes_per_finished_state']:,} |")
    report("fold", "quick" if args.quick else "full", result, "\n".join(md) + "\n", save=not args.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
