"""A scripted Crafter player that reads only the rendered local view: the teacher for SFT data.

It works down a priority list (survive, drink, eat, craft the wood and stone tools, collect,
place) and plans up to five actions with a breadth-first search over walkable cells.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from crafter import constants

from examples.crafter.game import GameState

__all__ = ["TeacherBrain", "first_step"]

_WALKABLE = frozenset(constants.walkable)  # grass, sand, path; never lava
_OPEN_GROUND = frozenset({"grass", "sand"})  # wandering stays out of tunnels, where skeletons shoot
_MOVES = {(-1, 0): "move_left", (1, 0): "move_right", (0, -1): "move_up", (0, 1): "move_down"}
_DIRS = tuple(_MOVES)
_TABLE_WOOD = constants.place["table"]["uses"]["wood"]
_FURNACE_STONE = constants.place["furnace"]["uses"]["stone"]
_PLACEABLE = {name: frozenset(info["where"]) for name, info in constants.place.items()}
_ORDER = ("tree", "water", "cow", "stone", "coal", "iron")  # render.py's landmark order
# The planner looks this many actions ahead; the agent runs the first one and plans again.
MAX_PLAN = 5


def _cells(state: GameState) -> Iterable[tuple[int, int, str]]:
    half = state.center
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            yield dx, dy, state.at(dx, dy)


def _near(state: GameState, names: set[str], radius: int) -> bool:
    """Any of `names` within `radius` (Chebyshev, as Crafter's `nearby` for crafting)."""
    return any(name in names and max(abs(dx), abs(dy)) <= radius for dx, dy, name in _cells(state))


def _approach(state: GameState, targets: set[str]) -> list[str] | None:
    """Moves to stand next to the nearest reachable target, then a move that turns to face it."""
    start = (0, 0)
    parents: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue = deque([start])
    while queue:
        pos = queue.popleft()
        for d in _DIRS:
            nxt = (pos[0] + d[0], pos[1] + d[1])
            if state.at(*nxt) in targets:
                plan = [_MOVES[d]]
                while parents[pos] is not None:
                    pos, move = parents[pos]  # type: ignore[misc]
                    plan.append(move)
                plan.reverse()
                # The last entry turns toward the target; skip it if we already face it.
                if len(plan) == 1 and d == state.facing:
                    return []
                return plan
            if nxt not in parents and state.at(*nxt) in _WALKABLE:
                parents[nxt] = (pos, _MOVES[d])
                queue.append(nxt)
    return None


def first_step(state: GameState, target: str) -> str | None:
    """The first action toward the nearest reachable `target` ("do" when facing it), or None."""
    plan = _approach(state, {target})
    if plan is None:
        return None
    return plan[0] if plan else "do"


class TeacherBrain:
    """Per-episode planner: `plan(state)` -> 1-5 Crafter action names; `act(state)` -> the next one."""

    def __init__(self, seed: int = 0) -> None:
        self._explore = _DIRS[seed % 4]
        self._turns = 0

    def plan(self, state: GameState) -> list[str]:
        self._turns += 1
        actions = self._choose(state)
        return (actions or ["noop"])[:MAX_PLAN]

    def act(self, state: GameState) -> str:
        return self.plan(state)[0]

    def _choose(self, state: GameState) -> list[str]:
        inv, done = state.inventory, set(state.achievements)
        if state.sleeping:
            return ["sleep"] * MAX_PLAN
        zombie_adjacent = any(state.at(*d) == "zombie" for d in _DIRS)
        if zombie_adjacent:
            return self._interact(state, {"zombie"}, hits=4)
        if inv["energy"] <= 2 and not _near(state, {"zombie", "skeleton"}, state.center):
            return ["sleep"] * MAX_PLAN
        # Urgent needs first, then cheap achievements close by, then the tool chain.
        if inv["drink"] <= 4 and (plan := self._interact(state, {"water"}, hits=9 - inv["drink"])):
            return plan
        if inv["food"] <= 4 and (plan := self._interact(state, {"cow"}, hits=3)):
            return plan
        for plan in (self._craft(state), self._place(state)):
            if plan:
                return plan
        # Then the nearest of the things still worth collecting: the observation lists things
        # nearest first, so the teacher's target is the first useful entry a reader sees.
        wanted = {}
        if "collect_drink" not in done:
            wanted["water"] = max(1, 9 - inv["drink"])
        if "eat_cow" not in done:
            wanted["cow"] = 3
        if inv["wood"] < 6:
            wanted["tree"] = 1
        if inv["wood_pickaxe"]:
            if inv["stone"] < _FURNACE_STONE + 2:
                wanted["stone"] = 1
            if "collect_coal" not in done:
                wanted["coal"] = 1
            if inv["stone_pickaxe"] and "collect_iron" not in done:
                wanted["iron"] = 1
        if plan := self._nearest(state, wanted):
            return plan
        return self._wander(state)

    def _nearest(self, state: GameState, hits: dict[str, int]) -> list[str] | None:
        """The walk to the nearest reachable target of `hits` (ties in the observation's order), then its hits."""
        plans = []
        for rank, target in enumerate(sorted(hits, key=_ORDER.index)):
            plan = _approach(state, {target})
            if plan is not None:
                plans.append((len(plan), rank, plan, hits[target]))
        if not plans:
            return None
        _, _, plan, n = min(plans, key=lambda p: p[:2])
        return plan + ["do"] * max(1, min(n, MAX_PLAN - len(plan)))

    def _interact(self, state: GameState, targets: set[str], *, hits: int) -> list[str] | None:
        plan = _approach(state, targets)
        if plan is None:
            return None
        return plan + ["do"] * max(1, min(hits, MAX_PLAN - len(plan)))

    def _craft(self, state: GameState) -> list[str] | None:
        inv = state.inventory
        wanted = []
        if not inv["wood_pickaxe"] and inv["wood"] >= 1:
            wanted.append("make_wood_pickaxe")
        if not inv["wood_sword"] and inv["wood"] >= 1 + len(wanted):
            wanted.append("make_wood_sword")
        if not inv["stone_pickaxe"] and inv["wood"] >= 1 and inv["stone"] >= 1:
            wanted.append("make_stone_pickaxe")
        if not inv["stone_sword"] and inv["wood"] >= 2 and inv["stone"] >= 2:
            wanted.append("make_stone_sword")
        if not wanted or not _near(state, {"table"}, state.center):
            return None
        if _near(state, {"table"}, 1):
            return wanted
        return _approach(state, {"table"})

    def _place(self, state: GameState) -> list[str] | None:
        inv, done = state.inventory, set(state.achievements)
        if inv["wood"] >= _TABLE_WOOD + 1 and not _near(state, {"table"}, state.center):
            return self._place_item(state, "table")
        if inv["sapling"] and "place_plant" not in done:
            return self._place_item(state, "plant")
        if inv["stone"] and "place_stone" not in done:
            return self._place_item(state, "stone")
        if inv["stone"] >= _FURNACE_STONE and "place_furnace" not in done and _near(state, {"table"}, 1):
            return self._place_item(state, "furnace")
        return None

    def _place_item(self, state: GameState, item: str) -> list[str]:
        where = _PLACEABLE[item]
        if state.facing_cell in where:
            return [f"place_{item}"]
        for d in _DIRS:  # step onto a free cell, which leaves us facing the one beyond it
            if state.at(*d) in _WALKABLE and state.at(2 * d[0], 2 * d[1]) in where:
                return [_MOVES[d], f"place_{item}"]
        return self._wander(state)

    def _wander(self, state: GameState) -> list[str]:
        """Walk straight until blocked, then turn (never straight back unless cornered); fish for saplings."""
        d = self._explore
        left, right, back = (d[1], -d[0]), (-d[1], d[0]), (-d[0], -d[1])
        runs = {c: self._run(state, c) for c in (d, left, right, back)}
        if not runs[d]:
            best = max((left, right), key=lambda c: runs[c])
            self._explore = best if runs[best] else back
        d = self._explore
        steps = runs[d]
        if not steps:
            return ["noop"]
        plan = [_MOVES[d]] * steps
        if "collect_sapling" not in state.achievements and state.at(d[0] * (steps + 1), d[1] * (steps + 1)) == "grass":
            plan.append("do")
        return plan

    @staticmethod
    def _run(state: GameState, d: tuple[int, int]) -> int:
        """How many cells (up to 4) we can walk in direction d."""
        steps = 0
        while steps < 4 and state.at(d[0] * (steps + 1), d[1] * (steps + 1)) in _OPEN_GROUND:
            steps += 1
        return steps
