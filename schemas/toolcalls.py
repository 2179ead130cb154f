"""The one text convention for tool calls, shared by the trainer's data and task apps' model policies.

SmolLM2's chat template (like many small models') has no native tool calls, so an assistant turn
that calls tools is trained and generated as plain text, one block per call:

    <tool_call>{"name": "act", "arguments": {"actions": ["move_left", "do"]}}</tool_call>

Free text, if any, comes before the blocks; several calls are separated by a newline. The tools a
conversation offers are described to the model by appending `render_tools_prompt(tools)` to its
system message. `parse_assistant_text` turns a generated reply back into an OpenAI assistant
message with `tool_calls` (arguments as a JSON string), so a task app can drive a model policy.
It is a contract between stages, so it lives here: task apps use it without the trainer (or torch).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from schemas.exceptions import ToolCallParseError

__all__ = [
    "TOOL_CALL_OPEN",
    "TOOL_CALL_CLOSE",
    "render_tool_call",
    "render_tool_calls",
    "render_assistant_content",
    "render_tools_prompt",
    "parse_tool_calls",
    "parse_assistant_text",
    "is_valid_tool_call_reply",
]

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

_BLOCK = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)" + re.escape(TOOL_CALL_CLOSE), re.DOTALL)


def _arguments_object(arguments: Any, *, name: str) -> dict[str, Any]:
    """OpenAI sends arguments as a JSON string; some producers send the object itself."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise ToolCallParseError(
                f"arguments of tool call {name!r} are not valid JSON ({exc.msg}): {arguments[:80]!r}"
            ) from exc
        if isinstance(value, dict):
            return value
    raise ToolCallParseError(
        f"arguments of tool call {name!r} must be a JSON object, got {type(arguments).__name__}"
    )


def render_tool_call(name: str, arguments: Any) -> str:
    """One canonical `<tool_call>{...}</tool_call>` block; arguments may be a JSON string or a dict."""
    payload = {"name": name, "arguments": _arguments_object(arguments, name=name)}
    return f"{TOOL_CALL_OPEN}{json.dumps(payload, ensure_ascii=False)}{TOOL_CALL_CLOSE}"


def render_tool_calls(tool_calls: Iterable[Mapping[str, Any]]) -> str:
    """OpenAI `tool_calls` entries as newline-separated canonical blocks."""
    blocks = []
    for call in tool_calls:
        function = call.get("function") or {}
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ToolCallParseError(f"tool call {call.get('id')!r} has no function name")
        blocks.append(render_tool_call(name, function.get("arguments")))
    return "\n".join(blocks)


def render_assistant_content(message: Mapping[str, Any]) -> str:
    """The text an assistant message is trained as: its content, then its tool calls."""
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    text = (content or "").strip()
    calls = render_tool_calls(message.get("tool_calls") or [])
    return "\n".join(part for part in (text, calls) if part)


def render_tools_prompt(tools: Sequence[Mapping[str, Any]]) -> str:
    """The paragraph appended to the system message so the model knows its tools and the format."""
    lines = ["You can call these tools:", "<tools>"]
    lines += [json.dumps(dict(tool), ensure_ascii=False, sort_keys=True) for tool in tools]
    lines += [
        "</tools>",
        f'To call a tool, reply with one line per call: {TOOL_CALL_OPEN}{{"name": <tool name>, '
        f'"arguments": <JSON object>}}{TOOL_CALL_CLOSE}',
    ]
    return "\n".join(lines)


def _tool_specs(tools: Sequence[Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any]] | None:
    if not tools:
        return None
    specs = {}
    for tool in tools:
        function = tool.get("function") or tool
        if isinstance(function.get("name"), str):
            specs[function["name"]] = function.get("parameters") or {}
    return specs


def parse_tool_calls(
    text: str, *, tools: Sequence[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """OpenAI `tool_calls` from generated text; raise ToolCallParseError on a malformed block.

    With `tools`, each call must name one of them and carry its required arguments.
    """
    specs = _tool_specs(tools)
    calls = []
    for index, match in enumerate(_BLOCK.finditer(text)):
        body = match.group(1).strip()
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ToolCallParseError(f"tool call {index} is not valid JSON ({exc.msg}): {body[:80]!r}") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            raise ToolCallParseError(
                f'tool call {index} must be an object {{"name": str, "arguments": object}}, got {body[:80]!r}'
            )
        name = payload["name"]
        arguments = _arguments_object(payload.get("arguments", {}), name=name)
        if specs is not None:
            if name not in specs:
                raise ToolCallParseError(f"tool call {index} names unknown tool {name!r}; expected one of {sorted(specs)}")
            missing = [key for key in specs[name].get("required", []) if key not in arguments]
            if missing:
                raise ToolCallParseError(f"tool call {index} to {name!r} lacks required arguments {missing}")
        calls.append(
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
            }
        )
    leftover = _BLOCK.sub("", text)
    if TOOL_CALL_OPEN in leftover or TOOL_CALL_CLOSE in leftover:
        raise ToolCallParseError(f"unbalanced {TOOL_CALL_OPEN} tag in {text[:120]!r}")
    return calls


def parse_assistant_text(text: str, *, tools: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """An OpenAI assistant message from generated text: content outside the blocks, plus tool_calls."""
    calls = parse_tool_calls(text, tools=tools)
    content = _BLOCK.sub("", text).strip() or None
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return message


def is_valid_tool_call_reply(text: str, *, tools: Sequence[Mapping[str, Any]] | None = None) -> bool:
    """True when the reply holds at least one well-formed tool call (to a known tool, if tools given)."""
    try:
        return bool(parse_tool_calls(text, tools=tools))
    except ToolCallParseError:
        return False
