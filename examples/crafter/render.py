"""The game state as a short text observation (about 55 SmolLM2 tokens), the system prompt, tool results.

The model reads the observation every turn (and a CPU fine-tune pays for every token of it), so
it says only what a decision needs: vitals, inventory, achievements, the cell faced and the
nearest things worth walking to, as offsets in words with the first step toward each.
"""

from __future__ import annotations

from examples.crafter.game import GameState, StepOutcome

__all__ = ["SYSTEM_PROMPT", "render_observation", "render_outcome", "direction_words"]

_VITALS = ("health", "food", "drink", "energy")
_FACING = {(0, -1): "up", (0, 1): "down", (-1, 0): "left", (1, 0): "right"}
# Things worth pointing out by distance, in the order a player usually wants them.
_LANDMARKS = ("tree", "water", "cow", "stone", "coal", "iron", "table", "furnace", "zombie", "skeleton", "lava")
_USEFUL = frozenset(_LANDMARKS[:8])  # never a step toward a zombie, a skeleton or lava


def direction_words(dx: int, dy: int) -> str:
    """An offset as words: (2, -1) -> '2 right, 1 up'."""
    parts = []
    if dx:
        parts.append(f"{abs(dx)} {'right' if dx > 0 else 'left'}")
    if dy:
        parts.append(f"{abs(dy)} {'down' if dy > 0 else 'up'}")
    return ", ".join(parts) or "here"


def _nearest(state: GameState) -> list[str]:
    """Each visible landmark's nearest instance, nearest first; useful ones with the first step toward them.

    The step is the first move of a shortest walk over the visible cells ("do" when it is the cell
    faced): the wrapper reads it off the map, as text games list admissible commands, so a small
    model can act on the map without parsing a grid.
    """
    from examples.crafter.teacher import first_step

    half = state.center
    found: dict[str, tuple[int, int, int]] = {}
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            name = state.at(dx, dy)
            dist = abs(dx) + abs(dy)
            if name in _LANDMARKS and (name not in found or dist < found[name][0]):
                found[name] = (dist, dx, dy)
    entries = []
    for name, (dist, dx, dy) in found.items():
        step = first_step(state, name) if name in _USEFUL else None
        where = "ahead" if step == "do" else direction_words(dx, dy)
        entries.append((dist, _LANDMARKS.index(name), f"{name} {where}" + (f" -> {step}" if step else "")))
    return [text for *_, text in sorted(entries)]


def render_observation(state: GameState, *, turn: int, max_turns: int) -> str:
    """The user message for one turn: vitals, inventory, achievements, the cell faced, nearest things.

    `turn` and `max_turns` are accepted for task apps that want a clock; the text leaves them out:
    no decision of the teacher depends on them, and every token costs a training step time.
    """
    inv = state.inventory
    items = [f"{name} {count}" for name, count in inv.items() if name not in _VITALS and count > 0]
    nearest = _nearest(state)
    lines = [
        ", ".join(f"{name} {inv.get(name, 0)}" for name in _VITALS) + (", sleeping" if state.sleeping else ""),
        f"Inventory: {', '.join(items) if items else 'empty'}",
        f"Achievements: {', '.join(state.achievements) if state.achievements else 'none'}",
        f"Facing: {state.facing_cell}",
        "Nearest: " + ("; ".join(nearest) if nearest else "nothing of note"),
    ]
    return "\n".join(lines)


def render_outcome(outcome: StepOutcome, state: GameState) -> str:
    """The tool result: what ran, what changed, and what the player now faces."""
    parts = [f"Ran {', '.join(outcome.executed) or 'nothing'}."]
    if outcome.inventory_delta:
        parts.append("Changes: " + ", ".join(f"{k} {v:+d}" for k, v in outcome.inventory_delta.items()) + ".")
    if outcome.new_achievements:
        parts.append("Unlocked: " + ", ".join(outcome.new_achievements) + ".")
    parts.append(f"Reward {outcome.reward:+.1f}.")
    if outcome.dead:
        parts.append("You died.")
    elif outcome.done:
        parts.append("The episode is over.")
    else:
        parts.append(f"Now facing {_FACING.get(state.facing, '?')} ({state.facing_cell}).")
    return " ".join(parts)


# Short on purpose: it is in every training example and every prompt. The tool spec (appended by
# the trainer and the model player) names the tool; the observation says what is where.
SYSTEM_PROMPT = "You play Crafter. Each turn, call `act` with one action: a move, or `do` to collect what you face."
