"""`make demo`: Crafter rollouts -> lake -> snapshot -> SFT -> base vs fine-tuned, in one command.

Starts the embedded broker and an ingestion worker, plays teacher episodes through the producer
SDK, waits until the lake holds them, prints the lake's stats, cuts a snapshot, fine-tunes
SmolLM2-135M on CPU (or a GPU when present), plays held-out seeds with the base and the
fine-tuned model (their rollouts stream into the same lake) and ends with a comparison table
computed from the lake, plus a report folder. Everything it started is stopped, even on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="demo-out", help="working folder: lake, snapshot, model, report (default demo-out)")
    p.add_argument("--episodes", type=int, default=24, help="teacher episodes (training data)")
    p.add_argument("--max-turns", type=int, default=12, help="agent turns per teacher episode")
    p.add_argument("--concurrency", type=int, default=4, help="episodes played at once")
    p.add_argument("--min-achievements", type=int, default=2, help="snapshot filter: sessions with at least N achievements")
    p.add_argument("--train-steps", type=int, default=16, help="optimizer steps of the fine-tune (CPU trains ~50-90 tokens/s; raise it on a GPU)")
    p.add_argument("--learning-rate", type=float, default=5e-4, help="fine-tune learning rate (higher than the agent-SFT default: few steps)")
    p.add_argument("--eval-episodes", type=int, default=2, help="held-out episodes per model")
    p.add_argument("--eval-max-turns", type=int, default=4, help="agent turns per evaluation episode")
    p.add_argument("--batch-size", type=int, default=2, help="examples per optimizer step (no accumulation: a short CPU run)")
    p.add_argument("--model", default=None, help="base model (default: the bundled SmolLM2-135M-Instruct GGUF)")
    p.add_argument("--keep", action="store_true", help="reuse --out instead of starting from an empty folder")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


class Services:
    """The broker and the worker this demo starts; `stop()` ends both, whatever happened."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.broker: Any = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.topic = "rollout-events"

    def start(self, lake: Path) -> None:
        from streams.broker import EmbeddedBroker, free_port

        self.broker = EmbeddedBroker(
            port=free_port(), topics={self.topic: 4, f"{self.topic}.dead-letters": 1}, log_path=self.out / "broker.log"
        ).start()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "ROLLOUT_TOPIC": self.topic,
            "LAKE_URI": str(lake),
            "WORKER_GROUP": f"demo-{uuid.uuid4().hex[:8]}",
            "TOPIC_PARTITIONS": "4",
            "BATCH_MAX_LATENCY_S": "0.5",
            "REWARD_GRACE_S": "5",
            "TIMER_INTERVAL_S": "1",
            "PYTHONUNBUFFERED": "1",
            "WEB_PORT": str(free_port()),  # never collide with another worker's web server on this host
        }
        log = open(self.out / "worker.log", "ab")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "streams.app", "worker", "-l", "info"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap_servers
        os.environ["ROLLOUT_TOPIC"] = self.topic

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait()
        if self.broker is not None:
            self.broker.stop()


def _wait_for_sessions(lake: Path, run_id: str, n: int, services: Services, timeout: float = 300.0) -> float:
    """Seconds until the lake shows `n` finalized sessions of `run_id`."""
    from lake.duck import connect

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if services.worker is not None and services.worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {services.worker.returncode}; see {services.out / 'worker.log'}")
        try:
            with connect(str(lake)) as con:
                got = con.query(
                    "SELECT count(*) FROM sessions WHERE run_id = ? AND finalized", [run_id]
                ).fetchone()[0]
            if got >= n:
                return time.monotonic() - started
        except Exception:  # tables not created yet
            pass
        time.sleep(1.0)
    raise RuntimeError(f"the lake did not show {n} finalized sessions of run {run_id} within {timeout:.0f}s")


def _step(console: Any, title: str) -> None:
    console.rule(f"[bold]{title}")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from examples.crafter.taskapp import run_episodes

    console = Console()
    out = Path(args.out).resolve()
    if out.exists() and not args.keep:
        shutil.rmtree(out)
    for sub in ("report", "report/plots"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    lake, snapshot, model_dir, report = out / "lake", out / "snapshot", out / "model", out / "report"
    tag = uuid.uuid4().hex[:6]
    teacher_run, base_run, tuned_run = f"teacher-{tag}", f"eval-base-{tag}", f"eval-sft-{tag}"
    timings: dict[str, float] = {}
    services = Services(out)
    t_all = time.monotonic()
    try:
        _step(console, "1/6 broker + ingestion worker")
        services.start(lake)
        console.print(f"broker on {services.broker.bootstrap_servers}, worker pid {services.worker.pid}, lake {lake}")

        _step(console, f"2/6 {args.episodes} teacher episodes on Crafter, published live")
        t0 = time.monotonic()
        teacher = run_episodes(
            list(range(args.episodes)), policy="teacher", max_turns=args.max_turns,
            concurrency=args.concurrency, split="train", run_id=teacher_run, on_result=lambda r: console.print(r.line()),
        )
        waited = _wait_for_sessions(lake, teacher_run, len(teacher), services)
        timings["teacher_episodes_s"] = time.monotonic() - t0
        console.print(f"all {len(teacher)} sessions finalized in the lake ({waited:.1f}s after the last episode)")

        _step(console, "3/6 python -m lake stats")
        from lake.cli import main as lake_main

        lake_main(["stats", "--lake", str(lake), "--plots", str(report / "plots")])

        _step(console, f"4/6 snapshot: >= {args.min_achievements} achievements, train/val split by task")
        code = lake_main([
            "snapshot", "--lake", str(lake), "--out", str(snapshot), "--force", "--no-progress",
            "--run-ids", teacher_run, "--min-achievements", str(args.min_achievements),
            "--granularity", "turn", "--context-turns", "0", "--val-fraction", "0.2",
        ])
        if code:
            raise RuntimeError("the snapshot failed; see the message above")
        shutil.copy(snapshot / "manifest.json", report / "snapshot_manifest.json")

        _step(console, f"5/6 fine-tune ({args.train_steps} steps) with TRL")
        t0 = time.monotonic()
        cmd = [
            sys.executable, "-m", "trainer", "--snapshot", str(snapshot), "--output", str(model_dir), "--overwrite",
            "--max_steps", str(args.train_steps), "--learning_rate", str(args.learning_rate),
            "--per_device_train_batch_size", str(args.batch_size), "--gradient_accumulation_steps", "1",
            "--logging_steps", "4", "--max_length", "1024",
        ]
        if args.model:
            cmd += ["--model", args.model]
        subprocess.run(cmd, cwd=REPO, check=True)
        timings["train_s"] = time.monotonic() - t0
        for name in ("training_summary.json", "loss_curve.png"):
            if (model_dir / name).exists():
                shutil.copy(model_dir / name, report / name)

        _step(console, f"6/6 base vs fine-tuned as Crafter players ({args.eval_episodes} held-out seeds each)")
        held_out = list(range(1000, 1000 + args.eval_episodes))
        t0 = time.monotonic()
        results = {}
        for label, run_id, model in (("base", base_run, args.model), ("fine-tuned", tuned_run, str(model_dir))):
            results[label] = run_episodes(
                held_out, policy="model", model=model, max_turns=args.eval_max_turns, concurrency=1,
                split="eval", run_id=run_id, max_new_tokens=64, on_result=lambda r: console.print(r.line()),
            )
            _wait_for_sessions(lake, run_id, len(held_out), services)
        timings["eval_s"] = time.monotonic() - t0

        from lake.compare import compare_runs
        from lake.duck import connect

        with connect(str(lake)) as con:
            rows = compare_runs(con, by=("run_id", "policy_name", "model"), where=f"run_id IN ('{teacher_run}', '{base_run}', '{tuned_run}')")
        names = {teacher_run: "teacher", base_run: "base", tuned_run: "fine-tuned"}
        table = Table(title="Crafter players, computed from the lake")
        for col in ("player", "sessions", "valid tool-call rate", "achievements (mean ± 95% CI)", "reward (mean ± 95% CI)"):
            table.add_column(col)
        order = [teacher_run, base_run, tuned_run]
        rows.sort(key=lambda r: order.index(r["run_id"]))
        for r in rows:
            table.add_row(
                names[r["run_id"]], str(r["sessions"]), f"{(r['valid_tool_call_rate'] or 0):.2f}",
                f"{r['achievements_mean'] or 0:.2f} ± {r['achievements_ci95'] or 0:.2f}",
                f"{r['reward_mean'] or 0:.2f} ± {r['reward_ci95'] or 0:.2f}",
            )
        console.print(table)
        timings["total_s"] = time.monotonic() - t_all
        comparison = {
            "runs": {names[r["run_id"]]: {k: v for k, v in r.items()} for r in rows},
            "timings": timings,
            "snapshot": str(snapshot),
            "model": str(model_dir),
        }
        (report / "comparison.json").write_text(json.dumps(comparison, indent=2, default=str) + "\n")
        base_rate = comparison["runs"].get("base", {}).get("valid_tool_call_rate") or 0.0
        tuned_rate = comparison["runs"].get("fine-tuned", {}).get("valid_tool_call_rate") or 0.0
        verdict = "higher" if tuned_rate > base_rate else "NOT higher"
        console.print(
            f"fine-tuned valid tool-call rate {tuned_rate:.2f} vs base {base_rate:.2f}: {verdict}. "
            f"Report: {report}  (total {timings['total_s'] / 60:.1f} min)"
        )
        return 0
    finally:
        services.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted: broker and worker stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
