"""The `act` tool offered to the agent, validation of its arguments, and the tool-call text format."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from examples.crafter.game import ACTIONS

__all__ = [
    "ACT_TOOL",
    "TOOLS",
    "MAX_ACTIONS_PER_CALL",
    "validate_act_arguments",
    "validate_tool_call",
    "tool_call",
    "parse_reply",
    "tools_prompt",
]

MAX_ACTIONS_PER_CALL = 5

ACT_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "act",
        "description": "Perform 1-5 Crafter actions in order. 'do' collects, drinks, eats or attacks "
        "the cell you face; moving into a blocked cell only turns you to face it.",
        "parameters": {
            "type": "object",
            "properties": {
                "actions": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(ACTIONS)},
                    "minItems": 1,
                    "maxItems": MAX_ACTIONS_PER_CALL,
                    "description": "Crafter action names, run one after another",
                }
            },
            "required": ["actions"],
            "additionalProperties": False,
        },
    },
}
TOOLS: list[dict[str, Any]] = [ACT_TOOL]
_ACTION_IDS = {name: i for i, name in enumerate(ACTIONS)}


def validate_act_arguments(arguments: Any) -> list[int] | str:
    """`act` arguments (JSON string or dict) -> action ids, or an error string saying what to fix."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            return f"arguments are not valid JSON ({exc.msg}); send {{\"actions\": [\"move_left\", \"do\"]}}"
    if not isinstance(arguments, Mapping):
        return f"arguments must be a JSON object with `actions`, got {type(arguments).__name__}"
    extra = sorted(set(arguments) - {"actions"})
    if extra:
        return f"unknown argument(s) {', '.join(extra)}; `act` takes only `actions`"
    actions = arguments.get("actions")
    if not isinstance(actions, list):
        return f"`actions` must be a list of 1-{MAX_ACTIONS_PER_CALL} action names, got {actions!r:.60}"
    if not 1 <= len(actions) <= MAX_ACTIONS_PER_CALL:
        return f"`actions` has {len(actions)} items; send 1-{MAX_ACTIONS_PER_CALL}"
    unknown = [a for a in actions if not isinstance(a, str) or a not in _ACTION_IDS]
    if unknown:
        return f"unknown action(s) {', '.join(map(repr, unknown))}; valid: {', '.join(ACTIONS)}"
    return [_ACTION_IDS[a] for a in actions]


def validate_tool_call(call: Mapping[str, Any]) -> list[int] | str:
    """An OpenAI tool_calls entry -> action ids, or an error string."""
    function = call.get("function") or {}
    name = function.get("name")
    if name != "act":
        return f"unknown tool {name!r}; the only tool is `act`"
    return validate_act_arguments(function.get("arguments"))


def tool_call(actions: Sequence[str], *, call_id: str = "call_0") -> dict[str, Any]:
    """An OpenAI tool_calls entry for `act` with these action names."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "act", "arguments": json.dumps({"actions": list(actions)})},
    }


# The text convention lives in trainer/toolcalls.py so training data and generation agree;
# these two adapters are the only places this app touches it.
def parse_reply(text: str) -> dict[str, Any]:
    """Generated text -> OpenAI assistant message; raises ValueError on a malformed tool call."""
    from trainer.toolcalls import parse_assistant_text

    return parse_assistant_text(text, tools=TOOLS)


def tools_prompt(tools: Sequence[Mapping[str, Any]] = TOOLS) -> str:
    """The tool description appended to the system message, exactly as the trainer renders it."""
    from trainer.toolcalls import render_tools_prompt

    return render_tools_prompt(tools)
