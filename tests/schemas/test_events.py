"""Wire format v1: parsing, one-line errors, and the committed JSON Schema files."""

from __future__ import annotations

import json

import pytest

from schemas import (
    EventTooLargeError,
    EventValidationError,
    OutcomeReward,
    SessionStart,
    Turn,
    encode_event,
    json_schemas,
    parse_event,
)
from schemas.jsonschema import SCHEMA_DIR

TURN = {
    "schema_version": 1, "type": "turn", "event_id": "e2", "session_id": "s1", "ts": "2026-11-01T10:00:01Z", "turn": 0,
    "messages": [
        {"role": "system", "content": "You are playing Crafter..."},
        {"role": "user", "content": [{"type": "text", "text": "=== CRAFTER GAME STATE ==="}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "act", "arguments": "{\"actions\":[\"move_left\"]}"}}]},
        {"role": "tool", "tool_call_id": "c0", "content": "ok"},
    ],
    "reward": 1.0, "achievements": ["collect_wood"], "valid": True, "done": False, "metadata": {},
}


def test_design_examples_parse_into_their_models():
    start = parse_event(json.dumps({
        "schema_version": 1, "type": "session_start", "event_id": "e1", "session_id": "s1", "ts": "2026-11-01T10:00:00Z",
        "env_name": "crafter", "policy_name": "react", "model": "gpt-4o-mini", "task_id": "seed-7", "split": "train",
        "seed": 7, "run_id": "eval-42", "tools": [{"type": "function", "function": {"name": "act", "parameters": {}}}], "metadata": {},
    }).encode())
    assert isinstance(start, SessionStart) and start.seed == 7
    turn = parse_event(json.dumps(TURN))
    assert isinstance(turn, Turn)
    assert turn.messages[2].content is None and turn.messages[2].tool_calls[0].function.name == "act"
    assert isinstance(turn.messages[1].content, list)


def test_round_trip_keeps_null_content_and_drops_unset_fields():
    turn = parse_event(TURN)
    again = json.loads(encode_event(turn))
    assert again["messages"][2]["content"] is None
    assert "tool_call_id" not in again["messages"][0]
    assert parse_event(encode_event(turn)) == turn


def test_tool_call_arguments_given_as_dict_become_a_json_string():
    data = json.loads(json.dumps(TURN))
    data["messages"][2]["tool_calls"][0]["function"]["arguments"] = {"actions": ["do"]}
    assert parse_event(data).messages[2].tool_calls[0].function.arguments == '{"actions":["do"]}'


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"turn": -1}, "field `turn` = -1: Input should be greater than or equal to 0"),
        ({"type": "teleport"}, "field `type` = 'teleport': expected one of session_start, turn"),
        ({"schema_version": 2}, "field `schema_version` = 2: expected 1"),
        ({"session_id": ""}, "field `session_id` = '': String should have at least 1 character"),
        ({"event_id": None}, "field `event_id` = None: Input should be a valid string"),
        ({"rewrad": 1}, "field `rewrad` = 1: unknown field; put custom data under `metadata`"),
        ({"ts": "yesterday"}, "field `ts` = 'yesterday'"),
        ({"ts": "2026-11-01T10:00:00"}, "timezone"),
    ],
)
def test_errors_are_one_line_naming_field_value_and_expectation(change, expected):
    data = {**TURN, **change}
    with pytest.raises(EventValidationError) as info:
        parse_event(json.dumps(data).encode())
    message = str(info.value)
    assert expected in message and "\n" not in message


def test_missing_event_id_is_named():
    data = {k: v for k, v in TURN.items() if k != "event_id"}
    with pytest.raises(EventValidationError, match="field `event_id` = None: required field is missing"):
        parse_event(data)


@pytest.mark.parametrize("raw", [b"{nope", b"\xff\xfe", b"[1,2]", b"null"])
def test_non_object_records_are_refused(raw):
    with pytest.raises(EventValidationError, match="record is"):
        parse_event(raw)


def test_size_limit_on_parse_and_encode():
    with pytest.raises(EventTooLargeError, match="over the 100-byte limit"):
        parse_event(json.dumps(TURN).encode(), max_bytes=100)
    big = OutcomeReward(event_id="e", session_id="s", total_reward=1.0, metadata={"blob": "x" * 2000})
    with pytest.raises(EventTooLargeError, match="outcome_reward event for session 's'"):
        encode_event(big, max_bytes=1000)


def test_validation_error_is_a_value_error():
    assert issubclass(EventValidationError, ValueError)


def test_committed_json_schemas_are_current():
    for name, schema in json_schemas().items():
        path = SCHEMA_DIR / name
        assert path.exists(), f"{name} missing: run `make schemas`"
        assert json.loads(path.read_text()) == schema, f"{name} is stale: run `make schemas`"


def test_json_schema_union_names_every_event_type():
    union = json_schemas()["rollout_event.v1.json"]
    assert set(union["discriminator"]["mapping"]) == {"session_start", "turn", "session_end", "outcome_reward", "judgment"}
