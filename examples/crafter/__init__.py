"""Crafter task app: the real Crafter env played through an `act` tool, published to the lake.

Run `python -m examples.crafter --help`. Names load on first use (the Crafter env then, never torch
or Kafka), so `python -m examples.crafter` can name a missing extra before anything imports Crafter.
"""

from typing import TYPE_CHECKING

from schemas.lazy import lazy_getattr

_LAZY = {
    **dict.fromkeys(("ACHIEVEMENTS", "ACTIONS", "CrafterGame", "GameState", "StepOutcome"), "examples.crafter.game"),
    **dict.fromkeys(("Decision", "ModelPolicy", "TeacherPolicy", "bundled_gguf", "make_policy"), "examples.crafter.policies"),
    **dict.fromkeys(("SYSTEM_PROMPT", "render_observation", "render_outcome"), "examples.crafter.render"),
    **dict.fromkeys(("EpisodeResult", "play_episodes", "run_episodes", "turn_messages"), "examples.crafter.taskapp"),
    **dict.fromkeys(("TOOLS", "tool_call", "validate_act_arguments", "validate_tool_call"), "examples.crafter.tools"),
}

if TYPE_CHECKING:
    from examples.crafter.game import ACHIEVEMENTS, ACTIONS, CrafterGame, GameState, StepOutcome
    from examples.crafter.policies import Decision, ModelPolicy, TeacherPolicy, bundled_gguf, make_policy
    from examples.crafter.render import SYSTEM_PROMPT, render_observation, render_outcome
    from examples.crafter.taskapp import EpisodeResult, play_episodes, run_episodes, turn_messages
    from examples.crafter.tools import TOOLS, tool_call, validate_act_arguments, validate_tool_call

__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = [
    "ACHIEVEMENTS",
    "ACTIONS",
    "CrafterGame",
    "Decision",
    "EpisodeResult",
    "GameState",
    "ModelPolicy",
    "SYSTEM_PROMPT",
    "StepOutcome",
    "TOOLS",
    "TeacherPolicy",
    "bundled_gguf",
    "make_policy",
    "play_episodes",
    "render_observation",
    "render_outcome",
    "run_episodes",
    "tool_call",
    "turn_messages",
    "validate_act_arguments",
    "validate_tool_call",
]
