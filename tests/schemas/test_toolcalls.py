"""The canonical tool-call text: rendered for training, parsed back from generations."""

from __future__ import annotations

import json

import pytest

from schemas.exceptions import ToolCallParseError
from schemas.toolcalls import (
    is_valid_tool_call_reply,
    parse_assistant_text,
    parse_tool_calls,
    render_assistant_content,
    render_tools_prompt,
)

ACT_TOOL = {
    "type": "function",
    "function": {
        "name": "act",
        "parameters": {
            "type": "object",
            "properties": {"actions": {"type": "array", "items": {"type": "string"}}},
            "required": ["actions"],
        },
    },
}
CALL = {"id": "c0", "type": "function", "function": {"name": "act", "arguments": '{"actions": ["move_left", "do"]}'}}


def test_assistant_message_renders_in_the_canonical_format():
    text = render_assistant_content({"role": "assistant", "content": None, "tool_calls": [CALL]})

    assert text == '<tool_call>{"name": "act", "arguments": {"actions": ["move_left", "do"]}}</tool_call>'


def test_content_comes_before_calls_and_calls_are_one_per_line():
    message = {"role": "assistant", "content": "Wood is left.", "tool_calls": [CALL, CALL]}

    lines = render_assistant_content(message).split("\n")

    assert lines[0] == "Wood is left." and len(lines) == 3 and lines[1] == lines[2]


def test_parse_gives_openai_tool_calls_back():
    text = "Going for the tree.\n" + render_assistant_content({"tool_calls": [CALL]})

    message = parse_assistant_text(text, tools=[ACT_TOOL])

    assert message["role"] == "assistant" and message["content"] == "Going for the tree."
    (call,) = message["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "act"
    assert json.loads(call["function"]["arguments"]) == {"actions": ["move_left", "do"]}


def test_plain_text_reply_has_no_tool_calls():
    assert parse_assistant_text("I will think first.") == {"role": "assistant", "content": "I will think first."}
    assert not is_valid_tool_call_reply("I will think first.")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('<tool_call>{"name": "act", "arguments": {"actions": [}</tool_call>', "not valid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', "must be an object"),
        ('<tool_call>{"name": "act", "arguments": {"actions": ["do"]}}', "unbalanced"),
        ('<tool_call>{"name": "fly", "arguments": {}}</tool_call>', "unknown tool 'fly'"),
        ('<tool_call>{"name": "act", "arguments": {}}</tool_call>', "lacks required arguments ['actions']"),
        ('<tool_call>{"name": "act", "arguments": [1]}</tool_call>', "must be a JSON object"),
    ],
)
def test_malformed_calls_are_refused_with_the_reason(text, error):
    with pytest.raises(ToolCallParseError, match=error.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        parse_tool_calls(text, tools=[ACT_TOOL])
    assert not is_valid_tool_call_reply(text, tools=[ACT_TOOL])


def test_arguments_that_are_not_json_cannot_be_rendered():
    bad = {"function": {"name": "act", "arguments": "{actions: nope"}}

    with pytest.raises(ToolCallParseError, match="arguments of tool call 'act' are not valid JSON"):
        render_assistant_content({"tool_calls": [bad]})


def test_tools_prompt_names_the_tools_and_the_format():
    prompt = render_tools_prompt([ACT_TOOL])

    assert '"name": "act"' in prompt
    assert "<tool_call>" in prompt and "</tool_call>" in prompt


def test_task_apps_get_the_convention_without_the_trainer_or_torch():
    import subprocess
    import sys

    code = ("import sys, schemas.toolcalls; "
            "assert not {'torch', 'transformers', 'trainer', 'lake'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
