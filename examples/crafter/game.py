"""A text-first wrapper around the real Crafter env: no pixels, a snapshot of what the agent sees."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import crafter
from crafter import constants

from examples.crafter.exceptions import CrafterConfigError

__all__ = [
    "ACTIONS",
    "ACHIEVEMENTS",
    "VIEW_SIZE",
    "CrafterGame",
    "GameState",
    "StepOutcome",
]

ACTIONS: tuple[str, ...] = tuple(constants.actions)
ACHIEVEMENTS: tuple[str, ...] = tuple(constants.achievements)
VIEW_SIZE = 9  # cells each side of the square local view (odd, so the player is in the middle)
_OUTSIDE = "outside"


class _TextEnv(crafter.Env):
    # Nobody looks at the pixels; skipping the renderer makes a step about 3x faster.
    def render(self, size=None):  # noqa: ANN001 - crafter's own signature
        return None


# World generation is ~2 s of pure Python; a copy of a freshly reset env takes ~5 ms. Crafter
# picks creatures to despawn from sets, so even two fresh envs diverge later; a copy is as good.
_PRISTINE: OrderedDict[tuple[int, int], _TextEnv] = OrderedDict()
_PRISTINE_LOCK = threading.Lock()
_PRISTINE_MAX = 64


def _fresh_env(seed: int, length: int) -> _TextEnv:
    """The first-episode world of `seed`, reset and ready to step."""
    key = (seed, length)
    with _PRISTINE_LOCK:
        pristine = _PRISTINE.get(key)
        if pristine is not None:
            _PRISTINE.move_to_end(key)
            return copy.deepcopy(pristine)
    env = _TextEnv(seed=seed, length=length)
    env.reset()
    with _PRISTINE_LOCK:
        _PRISTINE[key] = copy.deepcopy(env)
        while len(_PRISTINE) > _PRISTINE_MAX:
            _PRISTINE.popitem(last=False)
    return env


@dataclass(frozen=True)
class GameState:
    """What the agent may know after a step: stats, inventory and the local view around it."""

    step: int
    inventory: dict[str, int]
    achievements: tuple[str, ...]  # unlocked so far, in unlock order
    view: tuple[tuple[str, ...], ...]  # view[row][col] names a material or creature; north is row 0
    facing: tuple[int, int]  # (dx, dy); dy = -1 is up
    sleeping: bool
    done: bool

    @property
    def center(self) -> int:
        return len(self.view) // 2

    def at(self, dx: int, dy: int) -> str:
        """The name of the cell at offset (dx, dy) from the player, 'outside' off the view."""
        row, col = self.center + dy, self.center + dx
        if 0 <= row < len(self.view) and 0 <= col < len(self.view[row]):
            return self.view[row][col]
        return _OUTSIDE

    @property
    def facing_cell(self) -> str:
        return self.at(*self.facing)


@dataclass
class StepOutcome:
    """The effect of a batch of actions: reward, what changed, and whether the episode ended."""

    executed: list[str] = field(default_factory=list)
    reward: float = 0.0
    new_achievements: list[str] = field(default_factory=list)
    inventory_delta: dict[str, int] = field(default_factory=dict)
    done: bool = False
    dead: bool = False


class CrafterGame:
    """One Crafter episode on the world of `seed` (the same world on every reset, so task_id names it)."""

    def __init__(self, seed: int, *, view_size: int = VIEW_SIZE, length: int = 10_000) -> None:
        if view_size < 3 or view_size % 2 == 0:
            raise CrafterConfigError(f"view_size = {view_size}: expected an odd number >= 3")
        self.seed = seed
        self.view_size = view_size
        self.length = length
        self._env: _TextEnv | None = None
        self._unlocked: list[str] = []
        self.state: GameState | None = None

    def reset(self) -> GameState:
        """Start on the seed's world; the first reset of a seed in a process generates it (~2 s)."""
        self._env = _fresh_env(self.seed, self.length)
        self._unlocked = []
        self.state = self._snapshot(done=False)
        return self.state

    def step(self, action_ids: Sequence[int]) -> StepOutcome:
        """Run the actions in order, stopping early when the episode ends."""
        if self.state is None or self._env is None:
            raise RuntimeError("call reset() before step()")
        before = dict(self._env._player.inventory)
        outcome = StepOutcome()
        for action in action_ids:
            _, reward, done, info = self._env.step(int(action))
            outcome.executed.append(ACTIONS[int(action)])
            outcome.reward += float(reward)
            for name in ACHIEVEMENTS:
                if info["achievements"][name] > 0 and name not in self._unlocked:
                    self._unlocked.append(name)
                    outcome.new_achievements.append(name)
            if done:
                outcome.done = True
                outcome.dead = info["discount"] == 0.0
                break
        after = self._env._player.inventory
        outcome.inventory_delta = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        outcome.reward = round(outcome.reward, 6)
        self.state = self._snapshot(done=outcome.done)
        return outcome

    @property
    def achievements(self) -> list[str]:
        return list(self._unlocked)

    def _snapshot(self, *, done: bool) -> GameState:
        env = self._env
        assert env is not None
        player = env._player
        semantic = env._sem_view()
        names = _semantic_names(env)
        half = self.view_size // 2
        px, py = (int(v) for v in player.pos)
        width, height = semantic.shape
        rows = []
        for y in range(py - half, py + half + 1):
            row = []
            for x in range(px - half, px + half + 1):
                row.append(names.get(int(semantic[x, y]), "unknown") if 0 <= x < width and 0 <= y < height else _OUTSIDE)
            rows.append(tuple(row))
        return GameState(
            step=int(env._step or 0),
            inventory=dict(player.inventory),
            achievements=tuple(self._unlocked),
            view=tuple(rows),
            facing=(int(player.facing[0]), int(player.facing[1])),
            sleeping=bool(player.sleeping),
            done=done,
        )


def _semantic_names(env: crafter.Env) -> dict[int, str]:
    """Semantic ids -> names: materials from the world, then the creature classes."""
    sem = env._sem_view
    names = {i: (name or "unknown") for name, i in sem._mat_ids.items()}
    names.update({i: cls.__name__.lower() for cls, i in sem._obj_ids.items()})
    return names
