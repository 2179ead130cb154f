"""Summarise py-spy raw (folded) stacks: top frames by own time and by inclusive time.

    python -m bench.profile_summary bench/out/ingest/faust/pyspy.txt [--top 25] [--idle]

Idle samples (the event loop waiting in select/epoll) are left out unless --idle is given, so the
percentages are shares of busy time of all threads together.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<fn>[^ ]+) \((?P<file>[^:)]+)(?::\d+)?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    f = m["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in f:
            f = f.split(marker, 1)[1]
    return f"{m['fn']} ({f})"


def summarise(path: Path, top: int = 25, idle: bool = False) -> dict:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = busy = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        n = int(n)
        frames = [_short(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        total += n
        leaf = frames[-1] if frames else "?"
        if not idle and leaf.split(" ", 1)[0].endswith((".select", ".poll", "_wait_for_tstate_lock")):
            continue  # py-spy already drops idle threads; what is left here is the loop's own polling
        busy += n
        own[leaf] += n
        for f in set(frames):
            incl[f] += n
    return {
        "samples": total, "busy_samples": busy,
        "own": [(f, n, round(100 * n / max(busy, 1), 1)) for f, n in own.most_common(top)],
        "inclusive": [(f, n, round(100 * n / max(busy, 1), 1)) for f, n in incl.most_common(top * 2)],
    }


def format_summary(s: dict) -> str:
    out = [f"samples {s['samples']}, busy {s['busy_samples']} ({100 * s['busy_samples'] / max(s['samples'], 1):.0f}%)",
           "", "own time (% of busy):"]
    out += [f"  {pct:5.1f}%  {f}" for f, _, pct in s["own"]]
    out += ["", "inclusive (% of busy):"]
    out += [f"  {pct:5.1f}%  {f}" for f, _, pct in s["inclusive"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_summary", description=__doc__)
    p.add_argument("path")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--idle", action="store_true")
    args = p.parse_args(argv)
    print(format_summary(summarise(Path(args.path), args.top, args.idle)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
