"""Snapshot rows become chat text in the canonical convention; only assistant turns are trained."""

from __future__ import annotations

import json

from trainer.data import build_examples, to_chat, tokenize_chat
from trainer.snapshot import SnapshotRow

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
