"""`python -m examples.crafter`: play Crafter episodes with the teacher or a model and publish them."""

from __future__ import annotations

import argparse
import os
import re
import sys

from examples.crafter.exceptions import CrafterConfigError

__all__ = ["main", "parse_seeds"]


def parse_seeds(text: str) -> list[int]:
    """'0-9' or '1,2,3' or '0-4,10' -> seeds, in order."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match.group(2) and int(match.group(2)) < int(match.group(1))):
            raise CrafterConfigError(f"--seeds {text!r}: expected a range like 0-9 or a list like 1,2,3")
        first = int(match.group(1))
        seeds.extend(range(first, int(match.group(2) or first) + 1))
    return seeds


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.crafter", description=__doc__)
    p.add_argument("--policy", choices=("teacher", "model"), default="teacher")
    p.add_argument("--model", help="model directory or .gguf file (default for --policy model: bundled SmolLM2)")
    p.add_argument("--seeds", help="seeds, e.g. 0-9 or 1,2,3 (default: 0..episodes-1)")
    p.add_argument("--episodes", type=int, help="number of episodes; seeds are cycled (default: one per seed)")
    p.add_argument("--max-turns", type=int, default=20, help="agent turns per episode, 1-5 env steps each")
    p.add_argument("--concurrency", type=int, default=1, help="episodes played at once")
    p.add_argument("--split", default="train")
    p.add_argument("--run-id", help="run id recorded on every session (default: a fresh one)")
    p.add_argument("--bootstrap-servers", default=None, help="Kafka (default: $KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--topic", default=None, help="topic (default: $ROLLOUT_TOPIC or rollout-events)")
    p.add_argument("--max-new-tokens", type=int, default=40, help="generation budget of --policy model (a call is ~30 tokens)")
    p.add_argument("--dry-run", action="store_true", help="play without publishing (no broker needed)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: list[str] | None = None) -> int:
    from schemas.cli import run_cli

    return run_cli(lambda args: _run(_parser().parse_args(args)), argv)


def _run(args: argparse.Namespace) -> int:
    import uuid

    from schemas.extras import require

    require("crafter", what="the Crafter task app")
    if args.policy == "model":
        require("train", "torch", "transformers", what="--policy model")
    from examples.crafter.taskapp import run_episodes

    seeds = parse_seeds(args.seeds) if args.seeds else list(range(args.episodes or 1))
    if args.episodes is not None:
        if args.episodes < 1:
            raise CrafterConfigError(f"--episodes {args.episodes}: expected >= 1")
        seeds = [seeds[i % len(seeds)] for i in range(args.episodes)]
    run_id = args.run_id or f"crafter-{uuid.uuid4().hex[:8]}"
    bootstrap = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    results = run_episodes(
        seeds, policy=args.policy, model=args.model, publish=not args.dry_run, bootstrap_servers=bootstrap,
        topic=args.topic, max_turns=args.max_turns, concurrency=args.concurrency, split=args.split,
        run_id=run_id, max_new_tokens=args.max_new_tokens, on_result=lambda r: print(r.line(), flush=True),
    )
    turns = sum(r.num_turns for r in results)
    valid = sum(r.valid_turns for r in results)
    errors = sum(r.status == "error" for r in results)
    mean_ach = sum(len(r.achievements) for r in results) / len(results)
    mean_reward = sum(r.total_reward for r in results) / len(results)
    print(
        f"run {run_id}: episodes {len(results)}  mean achievements {mean_ach:.2f}  mean reward {mean_reward:.2f}  "
        f"valid tool calls {valid}/{turns} ({100 * valid / max(turns, 1):.1f}%)  errors {errors}"
        + ("  (dry run, nothing published)" if args.dry_run else "")
    )
    return 1 if errors == len(results) else 0


if __name__ == "__main__":
    sys.exit(main())
