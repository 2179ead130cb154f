"""One SFT run: verify the snapshot, load the model, train with TRL's SFTTrainer, write the outputs."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from trainer.config import DeviceInfo, TrainerArguments
from trainer.data import DataReport, build_examples
from trainer.exceptions import EmptySnapshotError, OutputDirError, TrainerConfigError
from trainer.loader import load_snapshot
from trainer.models import align_eos_token, freeze_below_top_layers, load_model, load_tokenizer, resolve_model
from trainer.report import build_summary, plot_loss_curve, write_summary

__all__ = ["check_output_dir", "run_training"]

logger = logging.getLogger(__name__)


def check_output_dir(output: Path, *, overwrite: bool) -> None:
    """Refuse to mix a new run into a directory that already holds one."""
    if output.exists() and not output.is_dir():
        raise OutputDirError(f"output {str(output)!r} is a file; pass a directory to --output")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise OutputDirError(f"output directory {str(output)!r} is not empty; pass another --output or --overwrite")


def _warn_about(split: str, report: DataReport) -> None:
    if report.too_long:
        shown = ", ".join(report.too_long[:5]) + (" ..." if len(report.too_long) > 5 else "")
        logger.warning("%d %s examples are longer than max_length and were truncated: %s", len(report.too_long), split, shown)
    for source, reason in list(report.skipped.items())[:5]:
        logger.warning("skipped %s: %s", source, reason)
    if len(report.skipped) > 5:
        logger.warning("skipped %d %s examples in all (see training_summary.json)", len(report.skipped), split)


def _torch_dtype(name: str | None) -> Any:
    import torch

    if name in (None, "auto"):
        return name
    return getattr(torch, name)


def run_training(opts: TrainerArguments, sft: Any, model_args: Any, *, device: DeviceInfo) -> dict[str, Any]:
    """Train and write model, tokenizer, training_summary.json and loss_curve.png to opts.output.

    Every check that can fail on user input (snapshot integrity, model path, output directory,
    chat template) runs before anything is written.
    """
    started = time.perf_counter()
    snapshot = load_snapshot(opts.snapshot)
    source = resolve_model(opts.model)
    output = Path(opts.output)
    check_output_dir(output, overwrite=opts.overwrite)

    tokenizer = load_tokenizer(source, chat_template_path=sft.chat_template_path, trust_remote_code=sft.trust_remote_code)
    train_columns, train_report = build_examples(
        tokenizer, snapshot.train, max_length=sft.max_length, assistant_only_loss=sft.assistant_only_loss
    )
    reports = {"train": train_report}
    _warn_about("train", train_report)
    if not train_columns["input_ids"]:
        raise EmptySnapshotError(
            f"none of the {train_report.rows} examples in {snapshot.path}/train.jsonl has assistant tokens to train on"
        )
    val_columns = None
    if snapshot.val:
        val_columns, reports["val"] = build_examples(
            tokenizer, snapshot.val, max_length=sft.max_length, assistant_only_loss=sft.assistant_only_loss
        )
        _warn_about("val", reports["val"])
        val_columns = val_columns if val_columns["input_ids"] else None

    model = load_model(
        source,
        dtype=_torch_dtype(model_args.dtype),
        attn_implementation=model_args.attn_implementation,
        trust_remote_code=sft.trust_remote_code,
    )
    align_eos_token(tokenizer, model)

    from datasets import Dataset
    from trl import SFTTrainer, get_peft_config

    peft_config = get_peft_config(model_args)
    if opts.train_top_layers:
        if peft_config is not None:
            raise TrainerConfigError("--train_top_layers and --use_peft both pick what to train; pass one of them")
        trainable = freeze_below_top_layers(model, opts.train_top_layers)
        logger.info("training the top %d blocks: %d parameters", opts.train_top_layers, trainable)

    # Our dataset arrives tokenized with `assistant_masks`, which TRL turns into labels itself; its own
    # assistant_only_loss path needs `{% generation %}` markers that SmolLM2's template lacks.
    args = dataclasses.replace(
        sft,
        output_dir=str(output),
        assistant_only_loss=False,
        chat_template_path=None,
        include_num_input_tokens_seen="non_padding",
        eval_strategy=sft.eval_strategy if val_columns else "no",
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(train_columns),
        eval_dataset=Dataset.from_dict(val_columns) if val_columns else None,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    result = trainer.train()
    eval_metrics = trainer.evaluate() if val_columns else None

    output.mkdir(parents=True, exist_ok=True)
    if peft_config is not None:
        # A merged model loads with plain from_pretrained(output), with no adapter or base-model lookup.
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        if trainer.is_world_process_zero():
            merged.save_pretrained(output)
    else:
        trainer.save_model(str(output))
    if not trainer.is_world_process_zero():
        return {}
    tokenizer.save_pretrained(output)
    summary = build_summary(
        snapshot=snapshot,
        source=source,
        output=output,
        args=args,
        assistant_only_loss=sft.assistant_only_loss,
        peft_config=peft_config,
        device=device,
        state=trainer.state,
        train_metrics=result.metrics,
        eval_metrics=eval_metrics,
        data_reports=reports,
        wall_time_s=time.perf_counter() - started,
        train_top_layers=opts.train_top_layers,
    )
    write_summary(output, summary)
    plot_loss_curve(output, summary["loss_history"], title=f"SFT on {snapshot.path.name} ({source.spec.split('/')[-1]})")
    return summary
