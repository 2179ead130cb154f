"""The game state as the compact text of a user message (about 250 tokens for SmolLM2)."""

from __future__ import annotations

from crafter import constants

from examples.crafter.game import ACHIEVEMENTS, GameState, StepOutcome

__all__ = ["SYMBOLS", "SYSTEM_PROMPT", "render_observation", "render_outcome", "direction_words"]

# One character per cell; creatures are lowercase letters, materials symbols or capitals.
SYMBOLS: dict[str, str] = {
    "player": "@",
    "grass": ".",
    "sand": ":",
    "path": "_",
    "water": "~",
    "tree": "T",
    "stone": "S",
    "coal": "C",
    "iron": "I",
    "diamond": "D",
    "lava": "L",
    "table": "B",
    "furnace": "F",
    "cow": "c",
    "zombie": "z",
    "skeleton": "k",
    "arrow": "*",
    "plant": "p",
    "outside": "#",
    "unknown": "?",
}
_VITALS = ("health", "food", "drink", "energy")
_FACING = {(0, -1): "up", (0, 1): "down", (-1, 0): "left", (1, 0): "right"}
# Things worth pointing out by distance, in the order a player usually wants them.
_LANDMARKS = ("tree", "water", "cow", "stone", "coal", "iron", "table", "furnace", "zombie", "skeleton", "lava")


def direction_words(dx: int, dy: int) -> str:
    """An offset as words: (2, -1) -> '2 right, 1 up'."""
    parts = []
    if dx:
        parts.append(f"{abs(dx)} {'right' if dx > 0 else 'left'}")
    if dy:
        parts.append(f"{abs(dy)} {'down' if dy > 0 else 'up'}")
    return ", ".join(parts) or "here"


def _nearest(state: GameState) -> list[str]:
    half = state.center
    found: dict[str, tuple[int, int, int]] = {}
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            name = state.at(dx, dy)
            dist = abs(dx) + abs(dy)
            if name in _LANDMARKS and (name not in found or dist < found[name][0]):
                found[name] = (dist, dx, dy)
    return [f"{name} {direction_words(dx, dy)}" for name in _LANDMARKS if name in found
            for _, dx, dy in [found[name]]]


def render_observation(state: GameState, *, turn: int, max_turns: int) -> str:
    """The user message for one turn: stats, inventory, facing, map with legend, nearest things."""
    inv = state.inventory
    items = [f"{name} {count}" for name, count in inv.items() if name not in _VITALS and count > 0]
    face = state.facing_cell
    lines = [
        f"Step: {state.step} (turn {turn + 1}/{max_turns})",
        " | ".join(f"{name.capitalize()} {inv.get(name, 0)}/9" for name in _VITALS)
        + (" | sleeping" if state.sleeping else ""),
        f"Inventory: {', '.join(items) if items else 'empty'}",
        f"Achievements ({len(state.achievements)}/{len(ACHIEVEMENTS)}): "
        + (", ".join(state.achievements) if state.achievements else "none"),
        f"Facing: {_FACING.get(state.facing, '?')} ({face})",
        f"Map ({len(state.view)}x{len(state.view)}, you are @ in the middle, up is north):",
    ]
    seen: list[str] = []
    for r, row in enumerate(state.view):
        cells = []
        for c, name in enumerate(row):
            name = "player" if (r, c) == (state.center, state.center) else name
            cells.append(SYMBOLS.get(name, "?"))
            if name not in seen:
                seen.append(name)
        lines.append(" ".join(cells))
    lines.append("Legend: " + " ".join(f"{SYMBOLS.get(n, '?')}={n}" for n in seen if n != "player"))
    nearest = _nearest(state)
    lines.append("Nearest: " + ("; ".join(nearest) if nearest else "nothing of note"))
    return "\n".join(lines)


def render_outcome(outcome: StepOutcome, state: GameState) -> str:
    """The tool result: what ran, what changed, and what the player now faces."""
    parts = [f"Ran {len(outcome.executed)} action(s): {', '.join(outcome.executed) or 'none'}."]
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


_TABLE_WOOD = constants.place["table"]["uses"]["wood"]

SYSTEM_PROMPT = f"""You are playing Crafter, a 2D survival game. Each turn you get the game state and call the `act` tool with 1-5 actions. Goal: unlock as many achievements as possible and stay alive.
- move_left/move_right/move_up/move_down walk one cell; moving into a blocked cell only turns you to face it.
- do acts on the cell you face: trees (T) give wood, water (~) gives drink, cows (c) are food after a few hits, zombies (z) fight back; stone (S) and coal (C) need a wood_pickaxe, iron (I) a stone_pickaxe; doing on grass sometimes gives a sapling.
- place_table costs {_TABLE_WOOD} wood; make_wood_pickaxe and make_wood_sword cost 1 wood each, make_stone_pickaxe and make_stone_sword 1 wood and 1 stone, all with a table (B) next to you.
- place_stone, place_plant (a sapling on grass) and place_furnace put things on the cell you face.
- sleep when energy is low; food, drink or energy at 0 costs health."""
