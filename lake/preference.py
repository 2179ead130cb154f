"""`--format preference`: chosen/rejected pairs for DPO from rollouts of the same task.

A line is `{"prompt":[...],"chosen":[...],"rejected":[...],"tools":[...],"metadata":{...}}`,
TRL DPOTrainer's conversational preference shape. Per task_id the best session (ranked like
`--best-per-task`) is chosen; every other session whose reward is lower by at least
`--min-margin` (and by more than 0) is rejected against it.

- granularity `session`: the prompt is what precedes the first assistant message (it must be
  the same in both rollouts: same task, same start), chosen/rejected are the rest of each
  rollout, up to its last assistant message.
- granularity `turn`: the prompt is the longest shared history; chosen/rejected are the two
  assistant messages where the rollouts first differ.

Pairs that cannot be built are counted by reason in the manifest. Tasks stream one at a time
(ordered by task_id), so memory holds one task's rollouts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

from lake.formats import message_json_sql
from lake.reader import Lake
from lake.spec import SnapshotSpec

__all__ = ["write_pairs"]

_EPS = 1e-12


@dataclasses.dataclass
class _Rollout:
    session_id: str
    reward: float | None
    is_val: bool
    tools: str
    roles: list[str]
    msgs: list[str]


def _rollouts(lake: Lake, spec: SnapshotSpec, batch_rows: int) -> Iterator[tuple[str, list[_Rollout]]]:
    """(task_id, its rollouts best first) for every task with a task_id, in task_id order."""
    from lake.lines import has_message_json, rows_sql

    sql = f"""
        {rows_sql(lake, dataclasses.replace(spec, granularity="session", format="messages"))}
        SELECT k.task_id, r.session_id, k.total_reward, k.is_val, k.tools_json, r.role,
               {message_json_sql("r", stored=has_message_json(lake))} AS msg
        FROM rows r JOIN (
            SELECT *, row_number() OVER (
                PARTITION BY task_id ORDER BY total_reward DESC NULLS LAST,
                achievements_count DESC NULLS LAST, last_asst_turn ASC, session_id ASC) AS pair_rank
            FROM _snap_kept WHERE task_id IS NOT NULL
        ) k ON k.session_id = r.session_id
        ORDER BY k.task_id, k.pair_rank, r.pos
    """
    task: str | None = None
    group: list[_Rollout] = []
    for batch in lake.query(sql).to_arrow_reader(batch_rows):
        cols_ = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        for t, sid, reward, is_val, tools, role, msg in zip(
            cols_["task_id"], cols_["session_id"], cols_["total_reward"], cols_["is_val"],
            cols_["tools_json"], cols_["role"], cols_["msg"]
        ):
            if t != task:
                if group:
                    yield task, group  # type: ignore[misc]
                task, group = t, []
            if not group or group[-1].session_id != sid:
                group.append(_Rollout(sid, reward, bool(is_val), tools, [], []))
            group[-1].roles.append(role)
            group[-1].msgs.append(msg)
    if group:
        yield task, group  # type: ignore[misc]


def _first_assistant(r: _Rollout) -> int | None:
    return next((i for i, role in enumerate(r.roles) if role == "assistant"), None)


def _pair(spec: SnapshotSpec, chosen: _Rollout, rejected: _Rollout) -> tuple[list[str], list[str], list[str]] | str:
    """(prompt, chosen, rejected) message JSON lists, or why no pair can be made."""
    if spec.granularity == "session":
        a, b = _first_assistant(chosen), _first_assistant(rejected)
        if a is None or b is None:
            return "no_assistant_message"
        if chosen.msgs[:a] != rejected.msgs[:b]:
            return "prompt_differs"
        return chosen.msgs[:a], chosen.msgs[a:], rejected.msgs[b:]
    n = 0
    for x, y in zip(chosen.msgs, rejected.msgs):
        if x != y:
            break
        n += 1
    if n == len(chosen.msgs) or n == len(rejected.msgs):
        return "same_actions"
    if chosen.roles[n] != "assistant" or rejected.roles[n] != "assistant":
        return "histories_differ"
    return chosen.msgs[:n], [chosen.msgs[n]], [rejected.msgs[n]]


def _enough(diff: float, margin: float) -> bool:
    """A positive difference of at least `margin` (float noise forgiven)."""
    return diff > _EPS and diff >= margin - _EPS


def write_pairs(
    lake: Lake, spec: SnapshotSpec, write: Callable[[bool, bytes], None], *, batch_rows: int = 131_072
) -> dict[str, Any]:
    """Write every pair through write(is_val, line); returns the counts for the manifest."""
    margin = spec.min_margin
    pairs = {"train": 0, "val": 0}
    tasks = 0
    sessions: set[str] = set()
    skipped: dict[str, int] = {}
    messages = 0
    for task, group in _rollouts(lake, spec, batch_rows):
        best = group[0]
        made = 0
        for other in group[1:]:
            if best.reward is None or other.reward is None or not _enough(best.reward - other.reward, margin):
                reason = "no_reward" if other.reward is None or best.reward is None else "margin_too_small"
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            built = _pair(spec, best, other)
            if isinstance(built, str):
                skipped[built] = skipped.get(built, 0) + 1
                continue
            prompt, chosen, rejected = built
            meta = json.dumps({
                "task_id": task, "chosen_session_id": best.session_id, "rejected_session_id": other.session_id,
                "chosen_reward": best.reward, "rejected_reward": other.reward,
                "margin": round(best.reward - other.reward, 12),
            }, sort_keys=True, separators=(",", ":"))
            line = (f'{{"prompt":[{",".join(prompt)}],"chosen":[{",".join(chosen)}],'
                    f'"rejected":[{",".join(rejected)}],"tools":{best.tools},"metadata":{meta}}}\n')
            write(best.is_val, line.encode())
            pairs["val" if best.is_val else "train"] += 1
            sessions.update((best.session_id, other.session_id))
            made += 1
            messages += len(prompt) + len(chosen) + len(rejected)
        if made:
            tasks += 1
        elif len(group) == 1:
            skipped["single_rollout_tasks"] = skipped.get("single_rollout_tasks", 0) + 1
    return {"pairs": pairs["train"] + pairs["val"], "pairs_by_split": pairs, "tasks": tasks,
            "sessions_paired": len(sessions), "not_paired": dict(sorted(skipped.items())),
            "messages": messages}
