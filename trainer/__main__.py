"""`python -m trainer --snapshot DIR [--model ID|DIR|FILE.gguf] [--output DIR] [--config train.toml]`.

Every SFTConfig flag of TRL works too (`--max_steps 2`, `--learning_rate 1e-4`, `--use_peft`, ...).
Several GPUs: `accelerate launch -m trainer --snapshot DIR ...`.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from schemas.cli import run_cli
    from trainer.config import pop_debug_flag

    debug, args = pop_debug_flag(sys.argv[1:] if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_cli(_main, args, debug=debug)


def _main(args: list[str]) -> int:
    from schemas.extras import require

    require("train", what="`python -m trainer`")
    from trainer.config import detect_device, parse_train_args, set_cpu_threads
    from trainer.train import run_training

    device = detect_device()
    set_cpu_threads(device)
    opts, sft, model_args = parse_train_args(args, device=device)
    summary = run_training(opts, sft, model_args, device=device)
    if summary:
        print(
            f"trained {summary['steps']} steps on {summary['device']['name']}: final loss {summary['final_loss']:.4f}"
            + (f", eval loss {summary['eval_loss']:.4f}" if summary.get("eval_loss") is not None else "")
            + f"; model and training_summary.json in {summary['model']['output']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
