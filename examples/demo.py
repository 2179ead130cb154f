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

from schemas.exceptions import RolloutLakeError

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]


class DemoError(RolloutLakeError):
    """A stage of the demo failed (the worker died, the lake stayed short, the snapshot failed): exit 1."""


# Defaults per device: (CPU, CUDA). A flag given on the command line always wins.
PROFILES: dict[str, tuple[Any, Any]] = {
    "episodes": (16, 96),
    "max_turns": (20, 30),
    "train_steps": (20, 300),
    "batch_size": (4, 16),
    "learning_rate": (3e-4, 1e-4),
    "train_top_layers": (10, 0),
    "eval_episodes": (4, 16),
    "eval_max_turns": (12, 30),
    "threads": (1, 0),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.demo", description=__doc__.splitlines()[0],
        epilog="Defaults shown as CPU/CUDA: the larger set is picked when a CUDA device is present.",
    )

    def knob(flag: str, kind: type, text: str) -> None:
        cpu, gpu = PROFILES[flag.lstrip("-").replace("-", "_")]
        p.add_argument(flag, type=kind, default=None, help=f"{text} (default {cpu} / {gpu})")

    p.add_argument("--out", default="demo-out", help="working folder: lake, snapshot, model, report (default demo-out)")
    knob("--episodes", int, "teacher episodes (training data)")
    knob("--max-turns", int, "agent turns (one action each) per teacher episode")
    p.add_argument("--concurrency", type=int, default=4, help="episodes played at once; model players batch their replies")
    p.add_argument("--min-achievements", type=int, default=1, help="snapshot filter: sessions with at least N achievements")
    knob("--train-steps", int, "optimizer steps of the fine-tune")
    knob("--learning-rate", float, "fine-tune learning rate (linear decay, no warm-up)")
    knob("--batch-size", int, "examples (turns) per optimizer step")
    knob("--train-top-layers", int, "train only the top N of the model's 30 blocks (backward stops there: "
         "faster CPU steps), 0 = every weight")
    knob("--eval-episodes", int, "held-out episodes per model (seeds 1000 and up, never in the lake before)")
    knob("--eval-max-turns", int, "agent turns per evaluation episode")
    knob("--threads", int, "torch CPU threads for training and generation, 0 = torch's choice "
         "(1 is the default on CPU: on a shared 2-core machine a second thread waits on a busy core)")
    p.add_argument("--cpu", action="store_true", help="use the CPU profile even when a CUDA device is present")
    p.add_argument("--model", default=None, help="base model (default: the bundled SmolLM2-135M-Instruct GGUF)")
    p.add_argument("--keep", action="store_true", help="reuse --out instead of starting from an empty folder")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def resolve_profile(args: argparse.Namespace, *, cuda: bool) -> argparse.Namespace:
    """Fill every knob left unset with the CPU or CUDA default; returns a new namespace."""
    resolved = argparse.Namespace(**vars(args))
    gpu = cuda and not args.cpu
    for name, pair in PROFILES.items():
        if getattr(resolved, name) is None:
            setattr(resolved, name, pair[1] if gpu else pair[0])
    resolved.profile = "cuda" if gpu else "cpu"
    return resolved


class Services:
    """The broker and the worker this demo starts; `stop()` ends both, whatever happened."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.broker: Any = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.topic = "rollout-events"

    def start(self, lake: Path) -> None:
        from schemas.kafka import rollout_topics
        from streams.devtools.broker import EmbeddedBroker, free_port

        self.broker = EmbeddedBroker(
            port=free_port(), topics=rollout_topics(self.topic, 4), log_path=self.out / "broker.log"
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
            [sys.executable, "-m", "faust", "-A", "streams.worker.app", "worker", "-l", "info"],
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
    from lake.reader import connect

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if services.worker is not None and services.worker.poll() is not None:
            raise DemoError(f"the worker exited with code {services.worker.returncode}; see {services.out / 'worker.log'}")
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
    raise DemoError(f"the lake did not show {n} finalized sessions of run {run_id} within {timeout:.0f}s")


def _step(console: Any, title: str) -> None:
    console.rule(f"[bold]{title}")


def _set_threads(n: int) -> dict[str, str]:
    """Torch threads for this process, and the environment that gives a child process the same."""
    if n <= 0:
        return {}
    import torch

    torch.set_num_threads(n)
    return {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from examples.crafter.taskapp import run_episodes
    from examples.report import comparison_rows, print_comparison, write_report

    args = resolve_profile(args, cuda=torch.cuda.is_available())
    console = Console()
    out = Path(args.out).resolve()
    if out.exists() and not args.keep:
        shutil.rmtree(out)
    for sub in ("report", "report/plots"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    lake, snapshot, model_dir, report = out / "lake", out / "snapshot", out / "model", out / "report"
    tag = uuid.uuid4().hex[:6]
    teacher_run, base_run, tuned_run = f"teacher-{tag}", f"eval-base-{tag}", f"eval-sft-{tag}"
    thread_env = _set_threads(args.threads)
    timings: dict[str, float] = {}
    services = Services(out)
    show = lambda r: console.print(r.line(), markup=False)  # noqa: E731 - '[collect_wood]' is not rich markup
    t_all = time.monotonic()
    console.print(
        f"profile {args.profile}: {args.episodes} teacher episodes x {args.max_turns} turns, {args.train_steps} steps "
        f"x {args.batch_size} examples at lr {args.learning_rate}, {args.eval_episodes} held-out episodes x "
        f"{args.eval_max_turns} turns per model, threads {args.threads or 'auto'}"
    )
    try:
        _step(console, "1/6 broker + ingestion worker")
        t0 = time.monotonic()
        services.start(lake)
        console.print(f"broker on {services.broker.bootstrap_servers}, worker pid {services.worker.pid}, lake {lake}")
        timings["services_s"] = time.monotonic() - t0
        t0 = time.monotonic()

        _step(console, f"2/6 {args.episodes} teacher episodes on Crafter, published live")
        teacher = run_episodes(
            list(range(args.episodes)), policy="teacher", max_turns=args.max_turns,
            concurrency=args.concurrency, split="train", run_id=teacher_run, on_result=show,
        )
        waited = _wait_for_sessions(lake, teacher_run, len(teacher), services)
        timings["teacher_episodes_s"] = time.monotonic() - t0
        console.print(f"all {len(teacher)} sessions finalized in the lake ({waited:.1f}s after the last episode)")

        _step(console, "3/6 python -m lake stats")
        from lake.cli import main as lake_main

        t0 = time.monotonic()
        lake_main(["stats", "--lake", str(lake), "--plots", str(report / "plots")])

        _step(console, f"4/6 snapshot: teacher turns of sessions with >= {args.min_achievements} achievements")
        code = lake_main([
            "snapshot", "--lake", str(lake), "--out", str(snapshot), "--force", "--no-progress",
            "--run-ids", teacher_run, "--min-achievements", str(args.min_achievements),
            "--granularity", "turn", "--context-turns", "0", "--val-fraction", "0",
        ])
        if code:
            raise DemoError("the snapshot failed; see the message above")
        shutil.copy(snapshot / "manifest.json", report / "snapshot_manifest.json")
        timings["stats_snapshot_s"] = time.monotonic() - t0

        _step(console, f"5/6 fine-tune ({args.train_steps} steps x {args.batch_size} turns) with TRL")
        t0 = time.monotonic()
        cmd = [
            sys.executable, "-m", "trainer", "--snapshot", str(snapshot), "--output", str(model_dir), "--overwrite",
            "--max_steps", str(args.train_steps), "--learning_rate", str(args.learning_rate),
            "--per_device_train_batch_size", str(args.batch_size), "--gradient_accumulation_steps", "1",
            "--warmup_steps", "0", "--lr_scheduler_type", "linear",  # a warm-up step would run at lr 0
            "--logging_steps", "1", "--max_length", "512", "--disable_tqdm", "true",
            "--train_top_layers", str(args.train_top_layers),
        ]
        if args.model:
            cmd += ["--model", args.model]
        subprocess.run(cmd, cwd=REPO, check=True, env={**os.environ, **thread_env})
        timings["train_s"] = time.monotonic() - t0
        for name in ("training_summary.json", "loss_curve.png"):
            if (model_dir / name).exists():
                shutil.copy(model_dir / name, report / name)

        held_out = list(range(1000, 1000 + args.eval_episodes))
        _step(console, f"6/6 base vs fine-tuned as Crafter players (held-out seeds {held_out[0]}-{held_out[-1]})")
        t0 = time.monotonic()
        for label, run_id, model in (("base", base_run, args.model), ("fine-tuned", tuned_run, str(model_dir))):
            run_episodes(
                held_out, policy="model", model=model, max_turns=args.eval_max_turns, concurrency=args.concurrency,
                split="eval", run_id=run_id, on_result=show,
                max_new_tokens=34,  # the longest act call is 32 tokens
            )
            _wait_for_sessions(lake, run_id, len(held_out), services)
        timings["eval_s"] = time.monotonic() - t0

        names = {teacher_run: "teacher", base_run: "base", tuned_run: "fine-tuned"}
        lake_main(["compare", "--lake", str(lake), "--by", "run_id,policy_name,model",
                   "--where", f"run_id IN ('{teacher_run}', '{base_run}', '{tuned_run}')"])
        runs = comparison_rows(str(lake), names)
        print_comparison(console, runs)
        timings["total_s"] = time.monotonic() - t_all
        comparison = {
            "runs": runs,
            "timings": timings,
            "profile": args.profile,
            "settings": {k: getattr(args, k) for k in (*PROFILES, "concurrency", "min_achievements")},
            "held_out_seeds": held_out,
            "snapshot": str(snapshot),
            "model": str(model_dir),
        }
        (report / "comparison.json").write_text(json.dumps(comparison, indent=2, default=str) + "\n")
        verdict = write_report(report, comparison, lake=str(lake))
        console.print(f"{verdict}\nReport: {report}  (total {timings['total_s'] / 60:.1f} min)")
        return 0
    finally:
        services.stop()


def main(argv: list[str] | None = None) -> int:
    from schemas.cli import run_cli

    return run_cli(lambda args: run(_parser().parse_args(args)), argv)


if __name__ == "__main__":
    sys.exit(main())
