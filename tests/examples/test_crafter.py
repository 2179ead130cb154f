"""The Crafter task app on the real env: rendering, the act tool, the teacher, a model policy, Kafka."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

import pytest

pytest.importorskip("crafter")

from examples.crafter import (  # noqa: E402
    ACTIONS,
    TOOLS,
    CrafterGame,
    ModelPolicy,
    TeacherPolicy,
    play_episodes,
    render_observation,
    render_outcome,
    run_episodes,
    validate_act_arguments,
    validate_tool_call,
)
from examples.crafter.__main__ import main, parse_seeds  # noqa: E402
from examples.crafter.render import SYSTEM_PROMPT  # noqa: E402
from examples.crafter.tools import parse_reply  # noqa: E402

ID = {name: i for i, name in enumerate(ACTIONS)}


@pytest.fixture(scope="module")
def game0() -> CrafterGame:
    """Seed 0 after walking left twice and hitting `do` (worlds take ~2 s to generate)."""
    game = CrafterGame(0)
    game.reset()
    game.step([ID["move_left"], ID["move_left"], ID["do"]])
    return game


# -- render ------------------------------------------------------------------------------------


def test_view_matches_the_crafter_world_around_the_player(game0: CrafterGame) -> None:
    env = game0._env
    px, py = env._player.pos
    state = game0.state
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            material, obj = env._world[(px + dx, py + dy)]
            expected = type(obj).__name__.lower() if obj else material
            assert state.at(dx, dy) == expected, (dx, dy)
    assert state.at(0, 0) == "player"
    assert state.facing == (-1, 0)  # the last move was left


def test_observation_is_short_and_names_vitals_facing_and_nearest_things(game0: CrafterGame) -> None:
    text = render_observation(game0.state, turn=2, max_turns=20)
    lines = text.splitlines()
    assert lines[0] == "health 9, food 9, drink 9, energy 9"
    assert lines[1:4] == ["Inventory: empty", "Achievements: none", "Facing: grass"]
    # Nearest first; useful things carry the first step of a shortest walk toward them.
    assert "tree 1 right, 4 up -> move_" in lines[4] and lines[4].startswith("Nearest: ")
    # The model reads it every turn, and a CPU fine-tune pays for each token: ~55 SmolLM2 tokens.
    assert len(text) < 300 and len(SYSTEM_PROMPT) < 120


def test_the_step_named_for_a_thing_walks_to_it_and_then_says_do() -> None:
    game = CrafterGame(0)
    state = game.reset()
    for _ in range(12):
        line = render_observation(state, turn=0, max_turns=20).splitlines()[-1]
        tree = next(part for part in line[len("Nearest: "):].split("; ") if part.startswith("tree"))
        step = tree.split("-> ")[1]
        if step == "do":
            assert tree.startswith("tree ahead")
            game.step([ID["do"]])
            assert "collect_wood" in game.achievements
            return
        game.step([ID[step]])
        state = game.state
    raise AssertionError("following the steps never reached the tree")


def test_outcome_summary_names_actions_changes_and_achievements() -> None:
    game = CrafterGame(3)
    state = game.reset()
    plan = []
    from examples.crafter.teacher import TeacherBrain

    brain = TeacherBrain(3)
    while "collect_wood" not in game.achievements and state.step < 40:
        plan = brain.plan(state)
        outcome = game.step([ID[a] for a in plan])
        state = game.state
    text = render_outcome(outcome, state)
    assert text.startswith(f"Ran {', '.join(plan)}.")
    assert "wood +1" in text and "Unlocked: collect_wood." in text and "Reward +1.0." in text


# -- tools -------------------------------------------------------------------------------------


def test_act_arguments_validate_to_action_ids() -> None:
    assert validate_act_arguments('{"action": "move_left"}') == [1]
    assert validate_act_arguments({"action": "make_wood_pickaxe"}) == [ID["make_wood_pickaxe"]]
    assert validate_tool_call({"function": {"name": "act", "arguments": '{"action":"noop"}'}}) == [0]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{not json", "arguments are not valid JSON"),
        ('["do"]', "arguments must be a JSON object with `action`, got list"),
        ({}, "`action` must be one action name, got None"),
        ({"action": ["do"]}, "`action` must be one action name, got ['do']"),
        ({"action": "fly"}, "unknown action 'fly'; valid: noop, move_left"),
        ({"action": "do", "why": "x"}, "unknown argument(s) why; `act` takes only `action`"),
    ],
)
def test_bad_act_arguments_give_an_error_saying_what_to_fix(arguments, message: str) -> None:
    error = validate_act_arguments(arguments)
    assert isinstance(error, str) and error.startswith(message)


def test_unknown_tool_is_an_error() -> None:
    assert validate_tool_call({"function": {"name": "move", "arguments": "{}"}}) == "unknown tool 'move'; the only tool is `act`"


def test_tool_spec_is_openai_format_with_one_action_name() -> None:
    (tool,) = TOOLS
    assert tool["type"] == "function" and tool["function"]["name"] == "act"
    assert tool["function"]["parameters"]["required"] == ["action"]
    # No enum (120 tokens of every example); a wrong name comes back with the list of valid ones.
    assert tool["function"]["parameters"]["properties"]["action"] == {"type": "string"}
    assert all(name in validate_act_arguments({"action": "jump"}) for name in ACTIONS)


# -- teacher -----------------------------------------------------------------------------------


def test_teacher_earns_achievements_with_valid_calls_on_fixed_seeds() -> None:
    from schemas.toolcalls import render_tool_calls

    policy = TeacherPolicy()
    for seed in (0, 4, 7):
        game = CrafterGame(seed)
        state = game.reset()
        agent = policy.start_episode(seed)
        turn = 0
        while state.step < 60 and not state.done:
            decision = agent.decide([], state)
            assert decision.valid, decision.error
            (call,) = decision.message["tool_calls"]
            assert validate_tool_call(call) == decision.actions
            # The call survives the text format the trainer trains on and the model policy parses.
            assert parse_reply(render_tool_calls([call]))["tool_calls"][0]["function"] == call["function"]
            game.step(decision.actions)
            state, turn = game.state, turn + 1
        assert len(game.achievements) >= 2, (seed, game.achievements)
        assert "collect_wood" in game.achievements, (seed, game.achievements)


# -- model policy ------------------------------------------------------------------------------


class _CannedModel(ModelPolicy):
    """The parsing path of ModelPolicy with fixed replies instead of generation."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__("canned", model_name="canned")
        self._replies = list(replies)

    def load(self) -> None:
        return None

    def generate(self, messages):  # noqa: ANN001, ANN201
        return self._replies.pop(0)


def test_model_replies_are_parsed_and_bad_ones_become_invalid_noops(game0: CrafterGame) -> None:
    good = '<tool_call>{"name": "act", "arguments": {"action": "move_up"}}</tool_call>'
    agent = _CannedModel([
        good, "I will move left.", '<tool_call>{"name": "act", "arguments": {"action": "jump"}}</tool_call>',
        "<tool_call>{broken</tool_call>",
    ]).start_episode(0)
    decisions = [agent.decide([], game0.state) for _ in range(4)]
    assert [d.valid for d in decisions] == [True, False, False, False]
    assert decisions[0].actions == [ID["move_up"]]
    assert decisions[0].message["content"] is None
    assert all(d.actions == [ID["noop"]] for d in decisions[1:])
    assert decisions[1].message == {"role": "assistant", "content": "I will move left."}
    assert decisions[1].error == "the reply holds no tool call"
    assert decisions[2].error.startswith("unknown action 'jump'") and decisions[2].message["tool_calls"]
    assert "not valid JSON" in decisions[3].error and decisions[3].message["content"] == "<tool_call>{broken</tool_call>"


def test_system_prompt_kv_cache_is_reused_and_matches_a_full_forward(tiny_model_dir, game0: CrafterGame) -> None:
    import copy

    import torch

    policy = ModelPolicy(tiny_model_dir)
    policy.load()
    messages = [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": render_observation(game0.state, turn=0, max_turns=5)}]
    prompt = policy.prompt_messages(messages)
    assert prompt[0]["content"].startswith(SYSTEM_PROMPT + "\n\nYou can call these tools:")
    text = policy._tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids = policy._tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        prefix_ids, cache = policy._prefix_cache(prompt[:1])
        n = len(prefix_ids)
        assert ids[0, :n].tolist() == prefix_ids, "the system block's tokens should prefix every prompt"
        cached = policy._lm(input_ids=ids[:, n:], past_key_values=copy.deepcopy(cache)).logits[0, -1]
        full = policy._lm(input_ids=ids).logits[0, -1]
    assert torch.allclose(cached, full, atol=1e-4)


def test_concurrent_episodes_share_one_batched_generate_with_the_same_replies(tiny_model_dir, game0: CrafterGame) -> None:
    other = CrafterGame(3)
    other.reset()
    other.step([ID["move_up"]] * 3 + [ID["do"]])
    conversations = [
        [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": render_observation(state, turn=t, max_turns=30)}]
        for state, t in ((game0.state, 0), (other.state, 11), (game0.state, 27))
    ]
    policy = ModelPolicy(tiny_model_dir, max_new_tokens=6, batch_size=3)
    singles = [policy.generate_batch([c])[0] for c in conversations]
    assert policy.generate_batch(conversations) == singles  # padding between system block and observation is masked
    calls = []
    policy.generate_batch = lambda batch: calls.append(len(batch)) or [f"r{i}" for i in range(len(batch))]
    policy._batcher._run = policy.generate_batch

    async def three_at_once() -> list[str]:
        return await asyncio.gather(*(asyncio.to_thread(policy.generate, c) for c in conversations))

    assert sorted(asyncio.run(three_at_once())) == ["r0", "r1", "r2"] and calls == [3]


def test_tiny_random_model_plays_two_invalid_turns_without_crashing(tiny_model_dir) -> None:
    policy = ModelPolicy(tiny_model_dir, max_new_tokens=8)
    (result,) = asyncio.run(play_episodes([1], policy, max_turns=2))
    assert result.status == "truncated" and result.error is None
    assert (result.num_turns, result.valid_turns, result.env_steps) == (2, 0, 2)
    assert result.policy_name == "model" and result.model == tiny_model_dir.name


class _BrokenPolicy(TeacherPolicy):
    name = "broken"

    def start_episode(self, seed: int):  # noqa: ANN201
        class Agent:
            def decide(self, messages, state):  # noqa: ANN001, ANN201
                raise RuntimeError("policy bug")

        return Agent()


def test_a_failing_policy_ends_its_episode_as_error_and_the_run_goes_on(game0: CrafterGame) -> None:
    results = asyncio.run(play_episodes([0, 0], _BrokenPolicy(), max_turns=3, concurrency=2))
    assert [(r.status, r.num_turns, r.error) for r in results] == [("error", 0, "RuntimeError: policy bug")] * 2


# -- CLI ---------------------------------------------------------------------------------------


def test_parse_seeds() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,2, 5-6") == [1, 2, 5, 6]


def test_cli_dry_run_prints_episode_lines_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "4", "--max-turns", "3", "--dry-run", "--run-id", "cli-test"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["seed-4", "teacher", "truncated", "turns"]
    assert out[-1].startswith("run cli-test: episodes 1  mean achievements ")
    assert "valid tool calls 3/3 (100.0%)" in out[-1]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--seeds", "9-1", "--dry-run"], "error: --seeds '9-1': expected a range like 0-9 or a list like 1,2,3"),
        (["--policy", "model", "--model", "/nonexistent", "--dry-run"], "error: --model /nonexistent: no such file"),
        (["--max-turns", "0", "--dry-run"], "error: max_turns = 0, concurrency = 1: both must be >= 1"),
    ],
)
def test_cli_user_errors_are_one_line_on_stderr(argv, error: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2  # bad input (schemas.cli)
    err = capsys.readouterr().err
    assert err.startswith(error) and err.count("\n") == 1


# -- Kafka -------------------------------------------------------------------------------------


def _read_events(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list[tuple[bytes, object]]:
    """(key, parsed event) for every record of `topic`, read with a plain aiokafka consumer."""
    from aiokafka import AIOKafkaConsumer

    from schemas import parse_event

    async def run() -> list[tuple[bytes, object]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        out: list[tuple[bytes, object]] = []
        try:
            deadline = time.monotonic() + timeout
            while len(out) < expected and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend((r.key, parse_event(r.value)) for r in records)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def test_episodes_are_published_as_sessions_turns_and_rewards(broker, topic_factory, tiny_model_dir) -> None:
    pytest.importorskip("streams.publisher.publisher")
    topic = topic_factory()
    options = dict(publish=True, bootstrap_servers=broker.bootstrap_servers, topic=topic, max_turns=3, run_id="t1")
    teacher = run_episodes([0, 4], policy="teacher", concurrency=2, **options)
    model = run_episodes([1], policy=ModelPolicy(tiny_model_dir, max_new_tokens=8), **options)
    results = {r.session_id: r for r in teacher + model}
    events = _read_events(broker.bootstrap_servers, topic, expected=3 * (3 + 3))

    by_session: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for key, event in events:
        assert key.decode() == event.session_id
        by_session[event.session_id][event.type].append(event)
    assert set(by_session) == set(results)
    for session_id, got in by_session.items():
        result = results[session_id]
        (start,) = got["session_start"]
        assert (start.env_name, start.task_id, start.seed, start.split, start.run_id) == (
            "crafter", f"seed-{result.seed}", result.seed, "train", "t1")
        assert start.policy_name == result.policy_name and start.tools == TOOLS
        turns = sorted(got["turn"], key=lambda t: t.turn)
        assert [t.turn for t in turns] == [0, 1, 2]
        for turn in turns:
            roles = [m.role for m in turn.messages]
            assert roles[:2] == ["system", "user"] and roles[2] == "assistant"
            assert turn.messages[1].content.startswith("health ")
            if turn.valid:
                assert roles == ["system", "user", "assistant", "tool"]
                assert turn.messages[2].content is None
                assert turn.messages[3].tool_call_id == turn.messages[2].tool_calls[0].id
                assert json.loads(turn.messages[2].tool_calls[0].function.arguments)["action"] in ACTIONS
        assert all(t.valid for t in turns) == (result.policy_name == "teacher")
        (end,) = got["session_end"]
        assert (end.status, end.num_turns) == ("truncated", 3)
        (outcome,) = got["outcome_reward"]
        assert outcome.total_reward == pytest.approx(sum(t.reward for t in turns))
        assert outcome.achievements == [a for t in turns for a in t.achievements] == result.achievements
        assert (outcome.objective, outcome.source) == ("reward", "env")
    assert [r.valid_turns for r in teacher] == [3, 3]
