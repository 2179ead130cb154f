"""`python -m trainer.evaluate --model DIR --snapshot DIR`: held-out loss and valid tool-call rate.

Run it on the base model and on the fine-tuned one to compare them on the same snapshot split.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from schemas.exceptions import ToolCallParseError
from schemas.toolcalls import is_valid_tool_call_reply, parse_tool_calls
from trainer.data import ChatExample, build_examples, render_prompt, to_chat
from trainer.exceptions import SnapshotError, SnapshotFormatError
from trainer.loader import Snapshot, SnapshotRow, load_snapshot

__all__ = ["EvaluateArguments", "held_out_loss", "tool_call_prompts", "generate_replies", "evaluate_model", "main"]


@dataclass
class EvaluateArguments:
    snapshot: str = field(metadata={"help": "Snapshot directory (verified against its manifest.json)."})
    model: str | None = field(default=None, metadata={"help": "Model directory, hub id or FILE.gguf. Default: the bundled SmolLM2 GGUF (the base model)."})
    split: Literal["val", "train"] = field(default="val", metadata={"help": "Which snapshot file to evaluate on."})
    max_prompts: int = field(default=32, metadata={"help": "At most this many tool-call turns are generated."})
    max_new_tokens: int = field(default=96, metadata={"help": "Generation length limit per reply."})
    batch_size: int = field(default=8, metadata={"help": "Examples per forward pass / generate call."})
    output: str | None = field(default=None, metadata={"help": "Also write the metrics JSON to this file."})
    progress: bool | None = field(default=None, metadata={"help": "Progress bars on stderr (default: on a terminal)."})


def _bar(total: int, desc: str, progress: bool | None) -> Any:
    from tqdm import tqdm

    # disable=None: shown on a terminal only, unless asked for explicitly.
    return tqdm(total=total, desc=desc, unit="ex", disable=None if progress is None else not progress)


def held_out_loss(model: Any, tokenizer: Any, rows: list[SnapshotRow], *, batch_size: int = 8, max_length: int | None = 2048, progress: bool | None = False) -> tuple[float | None, int]:
    """Mean negative log-likelihood per assistant token (the training objective) and the token count."""
    import torch

    columns, _ = build_examples(tokenizer, rows, max_length=max_length)
    total, count = 0.0, 0
    device = model.device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    bar = _bar(len(columns["input_ids"]), "held-out loss", progress)
    for start in range(0, len(columns["input_ids"]), batch_size):
        ids = columns["input_ids"][start : start + batch_size]
        masks = columns["assistant_masks"][start : start + batch_size]
        width = max(len(x) for x in ids)
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=device)
        attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
        labels = torch.tensor([[t if m else -100 for t, m in zip(x, mk)] + [-100] * (width - len(x)) for x, mk in zip(ids, masks)], device=device)
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += loss.item()
        count += int((labels[:, 1:] != -100).sum())
        bar.update(len(ids))
    bar.close()
    return (total / count if count else None), count


def tool_call_prompts(rows: list[SnapshotRow], *, max_prompts: int) -> list[tuple[ChatExample, int]]:
    """(example, index) of assistant turns that called tools: the model is asked to produce them."""
    prompts = []
    for row in rows:
        try:
            example = to_chat(row)
        except SnapshotFormatError:
            continue
        prompts += [(example, i) for i in example.tool_call_turns if i >= max(example.train_from, 1)]
        if len(prompts) >= max_prompts:
            break
    return prompts[:max_prompts]


def generate_replies(model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int, batch_size: int = 8, progress: bool | None = False) -> list[str]:
    """Greedy continuations of chat-template prompts, left-padded into batches."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    replies = []
    bar = _bar(len(prompts), "generate tool calls", progress)
    for start in range(0, len(prompts), batch_size):
        encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[start : start + batch_size]]
        width = max(len(x) for x in encoded)
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in encoded], device=model.device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in encoded], device=model.device)
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
            )
        replies += tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        bar.update(len(encoded))
    bar.close()
    return replies


def _calls(text: str) -> list[tuple[str, Any]] | None:
    try:
        return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in parse_tool_calls(text)]
    except ToolCallParseError:
        return None


def evaluate_model(model: Any, tokenizer: Any, rows: list[SnapshotRow], *, max_prompts: int = 32, max_new_tokens: int = 96, batch_size: int = 8, progress: bool | None = False) -> dict[str, Any]:
    """Held-out loss, and the share of generated tool-call turns that parse (and match the reference)."""
    model.eval()
    loss, tokens = held_out_loss(model, tokenizer, rows, batch_size=batch_size, progress=progress)
    prompts = tool_call_prompts(rows, max_prompts=max_prompts)
    texts = [render_prompt(tokenizer, example.messages[:i]) for example, i in prompts]
    replies = generate_replies(model, tokenizer, texts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    valid = [is_valid_tool_call_reply(r, tools=ex.tools or None) for r, (ex, _) in zip(replies, prompts)]
    matches = [_calls(r) is not None and _calls(r) == _calls(ex.messages[i]["content"]) for r, (ex, i) in zip(replies, prompts)]
    return {
        "examples": len(rows),
        "eval_loss": loss,
        "eval_tokens": tokens,
        "tool_call_prompts": len(prompts),
        "valid_tool_call_rate": sum(valid) / len(prompts) if prompts else None,
        "tool_call_match_rate": sum(matches) / len(prompts) if prompts else None,
        "samples": [{"source": ex.source, "reply": r, "valid": v} for r, (ex, _), v in list(zip(replies, prompts, valid))[:3]],
    }


def _rows(snapshot: Snapshot, split: str) -> list[SnapshotRow]:
    rows = snapshot.val if split == "val" else snapshot.train
    if not rows:
        raise SnapshotError(f"snapshot {str(snapshot.path)!r} has no {split}.jsonl examples; pass --split train or cut a snapshot with a val split")
    return rows


def main(argv: list[str] | None = None) -> int:
    from schemas.cli import run_cli
    from trainer.config import pop_debug_flag

    debug, args = pop_debug_flag(sys.argv[1:] if argv is None else list(argv))
    return run_cli(_main, args, debug=debug)


def _main(args: list[str]) -> int:
    from schemas.extras import require

    require("train", what="`python -m trainer.evaluate`")
    from schemas.cli import EXIT_STATUS
    from trainer.config import build_parser, parse_dataclasses

    parser = build_parser("python -m trainer.evaluate", (EvaluateArguments,))
    parser.epilog = EXIT_STATUS
    (opts,) = parse_dataclasses(parser, args)
    snapshot = load_snapshot(opts.snapshot)
    rows = _rows(snapshot, opts.split)

    import torch

    from trainer.models import align_eos_token, load_model, load_tokenizer, resolve_model

    source = resolve_model(opts.model)
    tokenizer = load_tokenizer(source)
    cuda = torch.cuda.is_available()
    if not cuda:
        from trainer.config import detect_device, set_cpu_threads

        set_cpu_threads(detect_device())
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    model = load_model(source, dtype=dtype)
    align_eos_token(tokenizer, model)
    if cuda:
        model = model.to("cuda")
    metrics = evaluate_model(model, tokenizer, rows, max_prompts=opts.max_prompts, max_new_tokens=opts.max_new_tokens,
                             batch_size=opts.batch_size, progress=opts.progress)
    result = {"model": source.spec, "snapshot": str(snapshot.path), "manifest_sha256": snapshot.manifest_sha256, "split": opts.split, **metrics}
    text = json.dumps(result, indent=2)
    if opts.output:
        Path(opts.output).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
