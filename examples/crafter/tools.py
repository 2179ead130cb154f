"""The `act` tool offered to the agent (one Crafter action per call), its validation, the text format."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from examples.crafter.game import ACTIONS

__all__ = [
    "ACT_TOOL",
    "TOOLS",
    "validate_act_arguments",
    "validate_tool_call",
    "tool_call",
    "parse_reply",
    "tools_prompt",
]

# One action per call: a 135M model learns a ~25-token call far faster than a list, and the
# game answers every action, so nothing is lost but a few tokens of overhead per env step.
# No `enum` of the 17 action names and no description: they were 130 of a ~390-token training
# example, read on every step of a CPU fine-tune; the system prompt says what `act` does, the
# observation's hints name the actions, and a wrong name comes back as an error that lists them.
ACT_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "act",
        "parameters": {"type": "object", "properties": {"action": {"type": "string"}}, "required": ["action"]},
    },
}
TOOLS: list[dict[str, Any]] = [ACT_TOOL]
_ACTION_IDS = {name: i for i, name in enumerate(ACTIONS)}


def validate_act_arguments(arguments: Any) -> list[int] | str:
    """`act` arguments (JSON string or dict) -> [action id], or an error string saying what to fix."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            return f"arguments are not valid JSON ({exc.msg}); send {{\"action\": \"move_left\"}}"
    if not isinstance(arguments, Mapping):
        return f"arguments must be a JSON object with `action`, got {type(arguments).__name__}"
    extra = sorted(set(arguments) - {"action"})
    if extra:
        return f"unknown argument(s) {', '.join(extra)}; `act` takes only `action`"
    action = arguments.get("action")
    if not isinstance(action, str):
        return f"`action` must be one action name, got {action!r:.60}"
    if action not in _ACTION_IDS:
        return f"unknown action {action!r:.40}; valid: {', '.join(ACTIONS)}"
    return [_ACTION_IDS[action]]


def validate_tool_call(call: Mapping[str, Any]) -> list[int] | str:
    """An OpenAI tool_calls entry -> [action id], or an error string."""
    function = call.get("function") or {}
    name = function.get("name")
    if name != "act":
        return f"unknown tool {name!r}; the only tool is `act`"
    return validate_act_arguments(function.get("arguments"))


def tool_call(action: str, *, call_id: str = "call_0") -> dict[str, Any]:
    """An OpenAI tool_calls entry for `act` with this action name."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "act", "arguments": json.dumps({"action": action})},
    }


# The text convention lives in schemas/toolcalls.py so training data and generation agree;
# these two adapters are the only places this app touches it.
def parse_reply(text: str) -> dict[str, Any]:
    """Generated text -> OpenAI assistant message; raises ValueError on a malformed tool call."""
    from schemas.toolcalls import parse_assistant_text

    return parse_assistant_text(text, tools=TOOLS)


def tools_prompt(tools: Sequence[Mapping[str, Any]] = TOOLS) -> str:
    """The tool description appended to the system message, exactly as the trainer renders it."""
    from schemas.toolcalls import render_tools_prompt

    return render_tools_prompt(tools)
