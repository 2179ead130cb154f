"""Runs Crafter episodes with a policy and publishes every turn through the producer SDK."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from examples.crafter.exceptions import CrafterConfigError
from examples.crafter.game import VIEW_SIZE, CrafterGame
from examples.crafter.policies import Decision, Policy, make_policy
from examples.crafter.render import SYSTEM_PROMPT, render_observation, render_outcome
from examples.crafter.tools import TOOLS

__all__ = ["EpisodeResult", "play_episodes", "run_episodes", "turn_messages"]

log = logging.getLogger(__name__)


@dataclass
class EpisodeResult:
    """What one episode did, as printed by the CLI and returned to the demo orchestrator."""

    session_id: str
    seed: int
    policy_name: str
    model: str
    status: str = "terminated"  # terminated | truncated | error
    num_turns: int = 0
    env_steps: int = 0
    total_reward: float = 0.0
    achievements: list[str] = field(default_factory=list)
    valid_turns: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def task_id(self) -> str:
        return f"seed-{self.seed}"

    @property
    def valid_rate(self) -> float:
        return self.valid_turns / self.num_turns if self.num_turns else 0.0

    def line(self) -> str:
        return (
            f"{self.task_id:>8}  {self.policy_name}  {self.status:<10} turns {self.num_turns:>3}  "
            f"steps {self.env_steps:>4}  reward {self.total_reward:5.1f}  valid {self.valid_turns}/{self.num_turns}  "
            f"achievements {len(self.achievements)} [{', '.join(self.achievements)}]  {self.seconds:.1f}s"
            + (f"  error: {self.error}" if self.error else "")
        )


def turn_messages(observation: str, decision: Decision, result_text: str) -> list[dict[str, Any]]:
    """The four messages of a turn; a reply without a tool call has no tool message to answer it."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": observation},
        decision.message,
    ]
    for i, call in enumerate(decision.message.get("tool_calls") or []):
        content = result_text if i == 0 else "Not run: only the first `act` call of a reply is run."
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    return messages


class _LocalSession:
    """Stands in for a RolloutSession when nothing is published (dry runs, teacher benchmarks)."""

    def __init__(self) -> None:
        self.session_id = str(uuid.uuid4())
        self.status: str | None = None

    async def turn(self, messages: Any = None, **_: Any) -> None:
        return None

    def set_status(self, status: str) -> None:
        self.status = status


def _fatal_errors(publisher: Any) -> tuple[type[BaseException], ...]:
    """Errors that stop the whole run: Kafka stayed away, so every later episode would fail too."""
    if publisher is None:
        return ()
    from streams import PublishError

    return (PublishError,)


async def _play(session: Any, game: CrafterGame, policy: Policy, result: EpisodeResult, max_turns: int) -> None:
    state = await asyncio.to_thread(game.reset)
    agent = policy.start_episode(game.seed)
    for turn in range(max_turns):
        observation = render_observation(state, turn=turn, max_turns=max_turns)
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": observation}]
        decision = await asyncio.to_thread(agent.decide, messages, state)
        outcome = await asyncio.to_thread(game.step, decision.actions)
        state = game.state
        assert state is not None
        summary = render_outcome(outcome, state)
        if not decision.valid:
            summary = f"Invalid call: {decision.error} Ran noop instead. {summary}"
        metadata: dict[str, Any] = {"env_step": state.step, "actions": outcome.executed, "health": state.inventory["health"]}
        if decision.error:
            metadata["error"] = decision.error
        await session.turn(
            turn_messages(observation, decision, summary), reward=outcome.reward,
            achievements=outcome.new_achievements, valid=decision.valid, done=outcome.done, metadata=metadata,
        )
        result.num_turns += 1
        result.valid_turns += int(decision.valid)
        result.total_reward = round(result.total_reward + outcome.reward, 6)
        result.env_steps = state.step
        result.achievements = game.achievements
        if outcome.done:
            return
    result.status = "truncated"
    session.set_status("truncated")


async def _episode(
    seed: int, policy: Policy, publisher: Any, *, max_turns: int, split: str, run_id: str | None,
) -> EpisodeResult:
    started = time.perf_counter()
    game = CrafterGame(seed)
    if publisher is None:
        ctx: Any = None
        session: Any = _LocalSession()
    else:
        ctx = publisher.session(
            env_name="crafter", policy_name=policy.name, model=policy.model, task_id=f"seed-{seed}", split=split,
            seed=seed, run_id=run_id, tools=TOOLS, metadata={"view_size": VIEW_SIZE, "max_turns": max_turns},
        )
        session = await ctx.__aenter__()
    result = EpisodeResult(session.session_id, seed, policy.name, policy.model)
    try:
        await _play(session, game, policy, result, max_turns)
    except _fatal_errors(publisher) as exc:
        await ctx.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    except Exception as exc:
        # A broken policy or env ends this episode as `error`; the others keep going.
        log.exception("episode seed-%s failed", seed)
        result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
        session.set_status("error")
    if ctx is not None:
        await ctx.__aexit__(None, None, None)
        if result.status != "error":
            await publisher.outcome_reward(
                session.session_id, result.total_reward, achievements=result.achievements,
                objective="reward", source="env", metadata={"achievements_count": len(result.achievements)},
            )
    result.seconds = round(time.perf_counter() - started, 2)
    return result


async def play_episodes(
    seeds: Sequence[int],
    policy: Policy,
    *,
    publisher: Any = None,
    max_turns: int = 20,
    concurrency: int = 1,
    split: str = "train",
    run_id: str | None = None,
    on_result: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Play one episode per seed (repeats allowed), `concurrency` at a time; results in seed order.

    `publisher` is a started RolloutPublisher, or None to play without publishing.
    """
    if max_turns < 1 or concurrency < 1:
        raise CrafterConfigError(f"max_turns = {max_turns}, concurrency = {concurrency}: both must be >= 1")
    await asyncio.to_thread(policy.load)
    gate = asyncio.Semaphore(concurrency)

    async def one(seed: int) -> EpisodeResult:
        async with gate:
            result = await _episode(seed, policy, publisher, max_turns=max_turns, split=split, run_id=run_id)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(seed) for seed in seeds)))


def run_episodes(
    seeds: Sequence[int],
    *,
    policy: str | Policy = "teacher",
    model: str | None = None,
    publish: bool = True,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    max_turns: int = 20,
    concurrency: int = 1,
    split: str = "train",
    run_id: str | None = None,
    max_new_tokens: int = 40,
    on_result: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Blocking entry point for scripts (the demo): play, publish each episode, return the results.

    Without `bootstrap_servers`/`topic` the publisher reads KAFKA_BOOTSTRAP_SERVERS / ROLLOUT_TOPIC.
    """
    if isinstance(policy, str):
        # Episodes played at once share one batched generate call.
        chosen = make_policy(policy, model, max_new_tokens=max_new_tokens, batch_size=concurrency)
    else:
        chosen = policy
    options = dict(max_turns=max_turns, concurrency=concurrency, split=split, run_id=run_id, on_result=on_result)

    async def main() -> list[EpisodeResult]:
        if not publish:
            return await play_episodes(seeds, chosen, **options)
        from streams import RolloutPublisher

        overrides = {k: v for k, v in (("bootstrap_servers", bootstrap_servers), ("topic", topic)) if v}
        async with RolloutPublisher.from_env(**overrides) as publisher:
            return await play_episodes(seeds, chosen, publisher=publisher, **options)

    return asyncio.run(main())
