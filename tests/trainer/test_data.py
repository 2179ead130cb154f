"""Snapshot rows become chat text in the canonical convention; only assistant turns are trained."""

from __future__ import annotations

import json

from trainer.data import build_examples, to_chat, tokenize_chat
from trainer.loader import SnapshotRow

from .conftest import crafter_rows


def _trained_text(tokenizer, ids, mask):
    return tokenizer.decode([t for t, m in zip(ids, mask) if m])


def test_tool_calls_become_canonical_text_and_tools_join_the_system_prompt():
    row = crafter_rows(1)[0]

    example = to_chat(SnapshotRow("train.jsonl:1", row))

    assert [m["role"] for m in example.messages] == ["system", "user", "assistant", "tool", "user", "assistant", "tool"]
    assert example.messages[0]["content"].startswith("You are playing Crafter.")
    assert "You can call these tools:" in example.messages[0]["content"]
    actions = json.loads(row["messages"][2]["tool_calls"][0]["function"]["arguments"])["actions"]
    assert example.messages[2]["content"] == f'<tool_call>{{"name": "act", "arguments": {{"actions": {json.dumps(actions)}}}}}</tool_call>'
    assert example.tool_call_turns == (2, 5)


def test_only_assistant_turns_and_their_end_of_turn_token_are_trained(tiny_tokenizer):
    example = to_chat(SnapshotRow("train.jsonl:1", crafter_rows(1)[0]))

    ids, mask = tokenize_chat(tiny_tokenizer, example)

    assert ids == tiny_tokenizer(tiny_tokenizer.apply_chat_template(example.messages, tokenize=False), add_special_tokens=False)["input_ids"]
    trained = _trained_text(tiny_tokenizer, ids, mask)
    first, second = example.messages[2]["content"], example.messages[5]["content"]
    assert trained == f"{first}<|im_end|>\n{second}<|im_end|>\n"
    assert "Goal:" not in trained and "ok:" not in trained


def test_prompt_completion_rows_train_only_the_completion(tiny_tokenizer):
    row = {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Move?"}],
        "completion": [{"role": "assistant", "content": "Left."}],
    }

    ids, mask = tokenize_chat(tiny_tokenizer, to_chat(SnapshotRow("train.jsonl:1", row)))

    assert _trained_text(tiny_tokenizer, ids, mask) == "Left.<|im_end|>\n"


def test_long_examples_are_reported_and_truncated(tiny_tokenizer):
    rows = [SnapshotRow(f"train.jsonl:{i + 1}", r) for i, r in enumerate(crafter_rows(3))]
    rows.append(SnapshotRow("train.jsonl:4", {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}))

    columns, report = build_examples(tiny_tokenizer, rows, max_length=150)

    assert report.rows == 4
    assert [entry.split(" ")[0] for entry in report.too_long] == ["train.jsonl:1", "train.jsonl:2", "train.jsonl:3"]
    assert all(len(ids) <= 150 for ids in columns["input_ids"])
    # Truncated to 150 tokens, the crafter rows lose every assistant turn: skipped, and said so.
    assert set(report.skipped) == {"train.jsonl:1", "train.jsonl:2", "train.jsonl:3"}
    assert report.examples == 1 and report.trained_tokens == sum(columns["assistant_masks"][0])


def test_a_row_with_unparsable_arguments_is_skipped_not_fatal(tiny_tokenizer):
    bad = crafter_rows(1)[0]
    bad["messages"][2]["tool_calls"][0]["function"]["arguments"] = "{not json"
    rows = [SnapshotRow("train.jsonl:1", bad), SnapshotRow("train.jsonl:2", crafter_rows(1, seed=3)[0])]

    columns, report = build_examples(tiny_tokenizer, rows, max_length=2048)

    assert report.examples == 1 and "not valid JSON" in report.skipped["train.jsonl:1"]


def _masked_row():
    """A crafter row whose first assistant turn is marked for no loss, as `--mask-invalid-turns` writes it."""
    row = crafter_rows(1, seed=5)[0]
    row["messages"][2]["weight"] = 0
    row["messages"][5]["weight"] = 1
    return row


def test_weight_zero_assistant_turns_stay_as_context_but_are_not_trained(tiny_tokenizer):
    row = _masked_row()
    example = to_chat(SnapshotRow("train.jsonl:1", row))
    assert example.no_loss == (2,) and example.tool_call_turns == (5,)

    ids, mask = tokenize_chat(tiny_tokenizer, example)

    text = tiny_tokenizer.decode(ids)
    first, second = example.messages[2]["content"], example.messages[5]["content"]
    assert first in text
    assert _trained_text(tiny_tokenizer, ids, mask) == f"{second}<|im_end|>\n"
    # Loss on every token (assistant_only_loss=False) still leaves the weight-0 turn out.
    _, full_mask = tokenize_chat(tiny_tokenizer, example, assistant_only=False)
    untrained = tiny_tokenizer.decode([t for t, m in zip(ids, full_mask) if not m])
    assert untrained == f"{first}<|im_end|>\n"


def test_weight_zero_in_a_completion_and_bad_weights(tiny_tokenizer):
    completion = [
        {"role": "assistant", "content": "Right.", "weight": 0},
        {"role": "user", "content": "That was wrong. Move?"},
        {"role": "assistant", "content": "Left."},
    ]
    rows = [
        SnapshotRow("train.jsonl:1", {"prompt": [{"role": "user", "content": "Move?"}], "completion": completion}),
        SnapshotRow("train.jsonl:2", {"prompt": [{"role": "user", "content": "Move?"}],
                                      "completion": [{"role": "assistant", "content": "Up.", "weight": 0}]}),
        SnapshotRow("train.jsonl:3", {"messages": [{"role": "user", "content": "x"},
                                                   {"role": "assistant", "content": "y", "weight": 0.5}]}),
    ]

    columns, report = build_examples(tiny_tokenizer, rows, max_length=None)

    assert report.examples == 1 and report.no_loss_turns == 1
    assert _trained_text(tiny_tokenizer, columns["input_ids"][0], columns["assistant_masks"][0]) == "Left.<|im_end|>\n"
    assert report.skipped == {
        "train.jsonl:2": "train.jsonl:2: every assistant turn has weight 0 (no loss)",
        "train.jsonl:3": "train.jsonl:3: message 1 has weight 0.5; expected 0 (no loss) or 1",
    }


def test_weight_zero_tokens_get_no_gradient_through_trl(tiny_model_dir, tiny_tokenizer, tmp_path):
    """TRL's SFTTrainer turns our masks into labels -100; the logits that predict weight-0 tokens get zero grad."""
    import dataclasses

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    example = to_chat(SnapshotRow("train.jsonl:1", _masked_row()))
    ids, mask = tokenize_chat(tiny_tokenizer, example)
    _, unmasked = tokenize_chat(tiny_tokenizer, dataclasses.replace(example, no_loss=()))
    weight0 = [i for i, (m, u) in enumerate(zip(mask, unmasked)) if u and not m]
    trained = [i for i, m in enumerate(mask) if m]
    assert weight0 and trained

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = SFTTrainer(
        model=model, processing_class=tiny_tokenizer,
        args=SFTConfig(output_dir=str(tmp_path / "out"), assistant_only_loss=False, report_to=[], max_length=None,
                       bf16=False, use_cpu=True),
        train_dataset=Dataset.from_dict({"input_ids": [ids], "assistant_masks": [mask]}),
    )
    labels = trainer.train_dataset[0]["labels"]
    assert [i for i, label in enumerate(labels) if label != -100] == trained

    batch = trainer.data_collator([trainer.train_dataset[0]])
    out = model(**batch)
    out.logits.retain_grad()
    out.loss.backward()
    grad = out.logits.grad[0].abs().sum(-1)  # position t-1 predicts token t
    assert all(grad[i - 1] == 0 for i in weight0)
    assert all(grad[i - 1] > 0 for i in trained)
