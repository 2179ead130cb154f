"""Crafter task app: the real Crafter env played through an `act` tool, published to the lake.

Run `python -m examples.crafter --help`. Importing this package loads Crafter, not torch or Kafka.
"""

from examples.crafter.game import ACHIEVEMENTS, ACTIONS, CrafterGame, GameState, StepOutcome
from examples.crafter.policies import Decision, ModelPolicy, TeacherPolicy, bundled_gguf, make_policy
from examples.crafter.render import SYSTEM_PROMPT, render_observation, render_outcome
from examples.crafter.taskapp import EpisodeResult, play_episodes, run_episodes, turn_messages
from examples.crafter.tools import TOOLS, tool_call, validate_act_arguments, validate_tool_call

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
