"""Snapshot rows -> chat text in the canonical tool-call convention -> token ids with an assistant mask.

The mask is computed by rendering growing prefixes of the conversation with the model's own chat
template: the characters an assistant turn adds (its text and the end-of-turn token) are trained,
everything else (system, user, tool results, the generation prompt) is context only. This works
for any prefix-preserving template, including SmolLM2's, which has no `{% generation %}` markers.
An assistant message with `"weight": 0` (OpenAI fine-tuning's convention; `lake snapshot
--mask-invalid-turns` writes it) stays in the text as context but gets no loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.exceptions import ToolCallParseError
from schemas.toolcalls import render_assistant_content, render_tools_prompt
from trainer.exceptions import ChatTemplateError, SnapshotFormatError
from trainer.loader import SnapshotRow

__all__ = ["ChatExample", "DataReport", "to_chat", "render_prompt", "tokenize_chat", "build_examples"]


@dataclass(frozen=True)
class ChatExample:
    """A conversation as role/content text; assistant turns at index >= train_from are trained.

    `no_loss` holds the indices of assistant turns marked `"weight": 0`: context, never trained;
    `tool_call_turns` (the tool calls a model is asked to reproduce) leaves them out.
    """

    source: str
    messages: list[dict[str, str]]
    train_from: int
    tool_call_turns: tuple[int, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    no_loss: tuple[int, ...] = ()


@dataclass
class DataReport:
    """What happened to the rows of one split on their way to token ids."""

    rows: int = 0
    examples: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    no_loss_turns: int = 0
    too_long: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return str(content)


def _weight(message: Mapping[str, Any], source: str, i: int) -> int:
    """An assistant message's loss weight: 1 when absent, 0 for "no loss"; nothing else is accepted."""
    weight = message.get("weight")
    if weight is None:
        return 1
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight not in (0, 1):
        raise SnapshotFormatError(f"{source}: message {i} has weight {weight!r}; expected 0 (no loss) or 1")
    return int(weight)


def _convert_messages(
    messages: Sequence[Mapping[str, Any]], source: str
) -> tuple[list[dict[str, str]], list[int], list[int]]:
    out: list[dict[str, str]] = []
    tool_call_turns: list[int] = []
    no_loss: list[int] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if not isinstance(role, str):
            raise SnapshotFormatError(f"{source}: message {i} has no role")
        if role == "assistant":
            if _weight(message, source, i) == 0:
                no_loss.append(len(out))
            elif message.get("tool_calls"):
                tool_call_turns.append(len(out))
            try:
                out.append({"role": "assistant", "content": render_assistant_content(message)})
            except ToolCallParseError as exc:
                raise SnapshotFormatError(f"{source}: message {i}: {exc}") from exc
        else:
            out.append({"role": role, "content": _text(message.get("content"))})
    return out, tool_call_turns, no_loss


def to_chat(row: SnapshotRow) -> ChatExample:
    """Normalise a conversational or prompt/completion row; tools are described in the system message."""
    data = row.data
    if "messages" in data:
        messages, train_from = list(data["messages"] or []), 0
    else:
        prompt, completion = list(data.get("prompt") or []), list(data.get("completion") or [])
        messages, train_from = prompt + completion, len(prompt)
    chat, tool_call_turns, no_loss = _convert_messages(messages, row.source)
    tools = tuple(data.get("tools") or ())
    if tools:
        paragraph = render_tools_prompt(tools)
        if chat and chat[0]["role"] == "system":
            chat[0] = {"role": "system", "content": f"{chat[0]['content']}\n\n{paragraph}"}
        else:
            chat.insert(0, {"role": "system", "content": paragraph})
            train_from += 1
            tool_call_turns = [t + 1 for t in tool_call_turns]
            no_loss = [t + 1 for t in no_loss]
    return ChatExample(row.source, chat, train_from, tuple(tool_call_turns), tools, tuple(no_loss))


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The text a model continues to produce the next assistant turn."""
    return _render(tokenizer, messages, generation_prompt=True)


def _assistant_spans(
    tokenizer: Any, example: ChatExample
) -> tuple[str, list[tuple[int, int]], list[tuple[int, int]]]:
    """The rendered text, the character spans of trained assistant turns, and those of no-loss ones."""
    messages = example.messages
    full = _render(tokenizer, messages, generation_prompt=False)
    spans, no_loss = [], []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or i == 0 or (i < example.train_from and i not in example.no_loss):
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not (through.startswith(before) and full.startswith(through)):
            raise ChatTemplateError(
                f"{example.source}: the chat template is not prefix-preserving (rendering a conversation changes "
                "the text of earlier turns), so assistant tokens cannot be located; pass a training template "
                "with --chat_template_path FILE.jinja"
            )
        (no_loss if i in example.no_loss else spans).append((len(before), len(through)))
    return full, spans, no_loss


def tokenize_chat(tokenizer: Any, example: ChatExample, *, assistant_only: bool = True) -> tuple[list[int], list[int]]:
    """Token ids of the rendered conversation and a 0/1 loss mask.

    The mask is 1 on trained assistant tokens (assistant_only), or on every token but those of
    `"weight": 0` assistant turns (assistant_only=False); a token that straddles an edge takes
    the span's bit, so no-loss text never leaks into the loss.
    """
    text, trained, no_loss = _assistant_spans(tokenizer, example)
    marked, bit, default = (trained, 1, 0) if assistant_only else (no_loss, 0, 1)
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        mask = [bit if any(s < end and e > start for start, end in marked) else default
                for s, e in encoded["offset_mapping"]]
        return ids, mask
    # Slow tokenizers have no offsets: tokenize the pieces between span edges one by one.
    ids, mask, cursor = [], [], 0
    for start, end in marked:
        for piece, piece_bit in ((text[cursor:start], default), (text[start:end], bit)):
            piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"] if piece else []
            ids += piece_ids
            mask += [piece_bit] * len(piece_ids)
        cursor = end
    tail = tokenizer(text[cursor:], add_special_tokens=False)["input_ids"] if text[cursor:] else []
    return ids + tail, mask + [default] * len(tail)


def build_examples(
    tokenizer: Any, rows: Sequence[SnapshotRow], *, max_length: int | None, assistant_only_loss: bool = True
) -> tuple[dict[str, list[list[int]]], DataReport]:
    """Columns `input_ids` and `assistant_masks` for TRL, truncated to max_length, and a report.

    Rows that cannot be converted or have nothing left to train on are skipped and named in the
    report rather than stopping a long job; longer-than-max_length rows are truncated and reported.
    Assistant turns with `"weight": 0` get mask 0 either way (counted in `no_loss_turns`).
    """
    report = DataReport(rows=len(rows))
    columns: dict[str, list[list[int]]] = {"input_ids": [], "assistant_masks": []}
    for row in rows:
        try:
            example = to_chat(row)
            ids, mask = tokenize_chat(tokenizer, example, assistant_only=assistant_only_loss)
        except SnapshotFormatError as exc:
            report.skipped[row.source] = str(exc)
            continue
        if max_length is not None and len(ids) > max_length:
            report.too_long.append(f"{row.source} ({len(ids)} tokens)")
            ids, mask = ids[:max_length], mask[:max_length]
        if not any(mask):
            trainable = [i for i, m in enumerate(example.messages)
                         if m["role"] == "assistant" and i >= max(example.train_from, 1)]
            if trainable and set(trainable) <= set(example.no_loss):
                report.skipped[row.source] = f"{row.source}: every assistant turn has weight 0 (no loss)"
            else:
                report.skipped[row.source] = f"{row.source}: no assistant tokens to train on within max_length"
            continue
        columns["input_ids"].append(ids)
        columns["assistant_masks"].append(mask)
        report.examples += 1
        report.no_loss_turns += len(example.no_loss)
        report.tokens += len(ids)
        report.trained_tokens += sum(mask)
    return columns, report
