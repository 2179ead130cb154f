"""training_summary.json and the loss curve: what a run did and where its data came from."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["SUMMARY_FILE", "LOSS_CURVE_FILE", "loss_history", "build_summary", "write_summary", "plot_loss_curve"]

SUMMARY_FILE = "training_summary.json"
LOSS_CURVE_FILE = "loss_curve.png"

_CONFIG_KEYS = (
    "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "learning_rate", "lr_scheduler_type", "warmup_steps", "max_grad_norm", "weight_decay", "max_length",
    "packing", "padding_free", "bf16", "gradient_checkpointing", "seed", "eval_strategy",
)


def loss_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The train/eval loss points of Trainer.state.log_history."""
    points = []
    for entry in log_history:
        for key in ("loss", "eval_loss"):
            if key in entry and "step" in entry:
                points.append({"step": entry["step"], key: entry[key]})
    return points


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
    }


def build_summary(
    *,
    snapshot: Any,
    source: Any,
    output: Path,
    args: Any,
    assistant_only_loss: bool,
    peft_config: Any,
    device: Any,
    state: Any,
    train_metrics: dict[str, Any],
    eval_metrics: dict[str, Any] | None,
    data_reports: dict[str, Any],
    wall_time_s: float,
    train_top_layers: int = 0,
) -> dict[str, Any]:
    history = loss_history(state.log_history)
    train_losses = [p["loss"] for p in history if "loss" in p]
    runtime = train_metrics.get("train_runtime") or 0.0
    tokens = int(state.num_input_tokens_seen or 0)
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "final_loss": train_losses[-1] if train_losses else train_metrics.get("train_loss"),
        "first_loss": train_losses[0] if train_losses else None,
        "mean_train_loss": train_metrics.get("train_loss"),
        "eval_loss": (eval_metrics or {}).get("eval_loss"),
        "steps": state.global_step,
        "epochs": state.epoch,
        "tokens_seen": tokens,
        "tokens_per_second": tokens / runtime if runtime else None,
        "steps_per_second": train_metrics.get("train_steps_per_second"),
        "train_runtime_s": runtime,
        "wall_time_s": wall_time_s,
        "device": {"type": "cuda" if device.cuda else "cpu", "name": device.name, "bf16": bool(args.bf16),
                   "world_size": args.world_size},
        "model": {"source": source.spec, "kind": source.kind, "name_or_path": source.name_or_path,
                  "gguf_file": source.gguf_file, "output": str(output),
                  "lora": peft_config.to_dict() if peft_config is not None else None,
                  "train_top_layers": train_top_layers or None},
        "snapshot": str(snapshot.path.resolve()),
        "manifest_sha256": snapshot.manifest_sha256,
        "manifest": snapshot.manifest.to_dict(),
        "data": {split: asdict(report) for split, report in data_reports.items()},
        "config": {"assistant_only_loss": assistant_only_loss, **{k: _jsonable(getattr(args, k)) for k in _CONFIG_KEYS}},
        "versions": _versions(),
        "loss_history": history,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(getattr(value, "value", value))


def write_summary(output: Path, summary: dict[str, Any]) -> Path:
    path = output / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def plot_loss_curve(output: Path, history: list[dict[str, Any]], *, title: str) -> Path:
    """Train loss per logged step, eval loss as points; drawn with the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    train = [(p["step"], p["loss"]) for p in history if "loss" in p]
    evals = [(p["step"], p["eval_loss"]) for p in history if "eval_loss" in p]
    if train:
        ax.plot(*zip(*train), marker=".", label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", linestyle="--", label="eval loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    path = output / LOSS_CURVE_FILE
    fig.savefig(path)
    return path
