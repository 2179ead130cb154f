"""Read per-rollout SFT JSONL files (`{"messages": [...], "metadata": {...}}` per line) as v1 events.

Lines that share metadata.session_id (or else metadata.run_id) form one session, in file order
(metadata.turn first when present); any other line is a session of its own. A line that repeats
the session's conversation so far (cumulative logs) only adds its new messages. Each assistant
reply becomes one turn. Session ids without a source id are hashes of the line's content.

The files are streamed, never held in memory: a first pass keeps only the byte offset of each
line that carries an id, the second reads one session's lines at a time. The same id in two
files is refused before anything is read further (the sessions would merge and the second file's
turns be dropped as duplicates), unless `namespace_by_file` prefixes ids with the file name.
A line or session with bad data is skipped with the reason; the import goes on.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from schemas import OutcomeReward, SessionEnd, SessionStart, Turn
from streams.importers.common import ROW_ERRORS, ImportedSession, make_event, parse_ts, split_turns, stable_id
from streams.importers.exceptions import ImportRowError, ImportSourceError

__all__ = ["read_sft_jsonl"]

SOURCE = "sft_jsonl"
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "model": "assistant", "bot": "assistant", "function": "tool"}
SESSION_KEYS = ("env_name", "policy_name", "model", "task_id", "split", "seed", "run_id")

Line = tuple[str, int, dict[str, Any]]  # file name, line number, record


@dataclass(slots=True)
class _Group:
    """The lines of one keyed session: where they are, never what they hold."""

    session_id: str
    file: int
    offsets: array = field(default_factory=lambda: array("q"))
    linenos: array = field(default_factory=lambda: array("q"))
    other_files: set[int] | None = None


def _record(raw: bytes) -> dict[str, Any]:
    """One line as a record, or ImportRowError saying why it cannot be one."""
    try:
        record = json.loads(raw)
    except UnicodeDecodeError:
        raise ImportRowError("unreadable line: not UTF-8 text") from None
    except ValueError as exc:
        raise ImportRowError(f"unreadable line: not JSON ({exc})") from None
    except RecursionError:
        raise ImportRowError("unreadable line: JSON nested too deeply to read; keep content and metadata shallow") from None
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise ImportRowError("unreadable line: expected an object with a `messages` list")
    return record


def _key(record: dict[str, Any], name: str, namespace_by_file: bool) -> tuple[str, str] | None:
    """(group key, session id) of a line with a source id; None for a line of its own."""
    meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    for kind in ("session_id", "run_id"):
        value = meta.get(kind)
        if value is None or value == "" or isinstance(value, (dict, list)):
            continue
        value = str(value)
        if kind == "session_id":
            sid = f"{name}:{value}" if namespace_by_file else value
        else:
            sid = "sft-" + (stable_id(SOURCE, f"run:{value}", name) if namespace_by_file else stable_id(SOURCE, f"run:{value}"))
        return f"{kind}:{sid}", sid
    return None


def _scan(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(byte offset, line number, raw line) of every non-blank line."""
    with open(path, "rb") as fh:
        offset = 0
        for lineno, raw in enumerate(fh, 1):
            if raw.strip():
                yield offset, lineno, raw
            offset += len(raw)


def read_sft_jsonl(paths: Iterable[str | Path], *, namespace_by_file: bool = False) -> Iterator[ImportedSession]:
    """Yield one ImportedSession per session found in the files, reading them twice, streamed.

    Raises ImportSourceError, before yielding anything, for a missing file or a session id found
    in more than one file.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ImportSourceError(f"{path}: no such JSONL file")
        if path.resolve() not in {f.resolve() for f in files}:  # a file named twice is read once
            files.append(path)
    groups = _index(files, namespace_by_file)
    yield from _sessions(files, groups, namespace_by_file)


def _index(files: list[Path], namespace_by_file: bool) -> dict[str, _Group]:
    """Pass 1: the offsets of every line with a source id, grouped by session."""
    groups: dict[str, _Group] = {}
    for index, path in enumerate(files):
        for offset, lineno, raw in _scan(path):
            try:
                found = _key(_record(raw), path.name, namespace_by_file)
            except ImportRowError:
                continue  # reported in pass 2
            if found is None:
                continue
            key, sid = found
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(sid, index)
            elif group.file != index:
                group.other_files = {*(group.other_files or ()), index}
                continue
            group.offsets.append(offset)
            group.linenos.append(lineno)
    clashes = [g for g in groups.values() if g.other_files]
    if clashes:
        g = clashes[0]
        names = ", ".join(files[i].name for i in sorted({g.file, *g.other_files}))
        more = f" (and {len(clashes) - 1} more ids)" if len(clashes) > 1 else ""
        hint = (
            "rename one of the files" if namespace_by_file else
            "pass --namespace-by-file to import them as separate sessions (ids become '<file name>:<id>'), "
            "or concatenate the files first if they hold one session"
        )
        raise ImportSourceError(
            f"session {g.session_id!r} appears in {names}{more}: lines of different files would merge into one "
            f"session and the later file's turns be dropped as duplicates; {hint}"
        )
    return groups


def _sessions(files: list[Path], groups: dict[str, _Group], namespace_by_file: bool) -> Iterator[ImportedSession]:
    """Pass 2: every session, in order of its first line; identical id-less lines are one session."""
    seen_lines: set[int] = set()  # 128-bit ids as ints: memory per id-less line stays small
    for index, path in enumerate(files):
        with open(path, "rb") as reader:
            for offset, lineno, raw in _scan(path):
                try:
                    record = _record(raw)
                except ImportRowError as exc:
                    yield ImportedSession(f"{path.name}:{lineno}", error=str(exc))
                    continue
                found = _key(record, path.name, namespace_by_file)
                if found is not None:
                    group = groups.get(found[0])
                    if group is None:  # the file changed since the first pass
                        yield ImportedSession(found[1], error=f"{path.name}:{lineno}: line appeared during the import")
                    elif group.offsets[0] == offset and group.file == index:
                        yield _convert(group.session_id, lambda g=group: _read_group(reader, path.name, g))
                    continue
                canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                sid = "sft-" + stable_id(SOURCE, f"line:{stable_id(canonical)}")
                if int(sid[4:], 16) not in seen_lines:
                    seen_lines.add(int(sid[4:], 16))
                    yield _convert(sid, lambda: [(path.name, lineno, record)])


def _read_group(reader: BinaryIO, name: str, group: _Group) -> list[Line]:
    lines = []
    for offset, lineno in zip(group.offsets, group.linenos):
        reader.seek(offset)
        try:
            lines.append((name, lineno, _record(reader.readline())))
        except ImportRowError as exc:  # the file changed since the first pass
            raise ImportRowError(f"{name}:{lineno}: {exc}") from None
    return lines


def _convert(sid: str, read: Any) -> ImportedSession:
    try:
        return _session(sid, read())
    except ROW_ERRORS as exc:
        return ImportedSession(sid, error=str(exc) or type(exc).__name__)


def _message(msg: Any, where: str, i: int) -> dict[str, Any]:
    if not isinstance(msg, dict):
        raise ImportRowError(f"{where}: message {i} is a JSON {type(msg).__name__}, expected an object with a `role`")
    if "role" not in msg and "from" in msg:  # ShareGPT
        msg = {"role": msg["from"], "content": msg.get("value")}
    if msg.get("role") in ROLE_ALIASES:
        msg = {**msg, "role": ROLE_ALIASES[msg["role"]]}
    return msg


def _turn_order(item: tuple[int, Line]) -> tuple[int, int]:
    pos, (_name, _lineno, record) = item
    turn = (record.get("metadata") or {}).get("turn")
    return (turn if isinstance(turn, int) and not isinstance(turn, bool) else pos, pos)


def _meta(record: dict[str, Any]) -> dict[str, Any]:
    meta = record.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _session(sid: str, lines: list[Line]) -> ImportedSession:
    ordered = [line for _, line in sorted(enumerate(lines), key=_turn_order)]
    first_meta = dict(_meta(ordered[0][2]))

    conversation: list[Any] = []
    turns: list[dict[str, Any]] = []
    for name, lineno, record in ordered:
        meta = _meta(record)
        messages = [_message(m, f"{name}:{lineno}", i) for i, m in enumerate(record["messages"])]
        if conversation and messages[: len(conversation)] == conversation:
            new = messages[len(conversation):]  # a cumulative log repeats what came before
        else:
            new = messages
        conversation = messages
        pieces = split_turns(new) if new else []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            turns.append({
                "messages": piece,
                "reward": meta.get("reward") if last else None,
                "ts": parse_ts(meta.get("created_at") or meta.get("timestamp"), f"{name}:{lineno}: metadata.created_at"),
                "metadata": {"source": SOURCE, "file": name, "line": lineno},
            })

    created = parse_ts(first_meta.get("created_at") or first_meta.get("timestamp"),
                       f"{ordered[0][0]}:{ordered[0][1]}: metadata.created_at")
    seed = first_meta.get("seed")
    out: list[Any] = [make_event(
        SessionStart, event_id=stable_id(SOURCE, sid, "start"), session_id=sid, ts=created,
        env_name=first_meta.get("env_name") or first_meta.get("env"),
        policy_name=first_meta.get("policy_name") or first_meta.get("policy"),
        model=first_meta.get("model"),
        task_id=None if first_meta.get("task_id") is None else str(first_meta["task_id"]),
        split=first_meta.get("split") or first_meta.get("task_split"),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        run_id=None if first_meta.get("run_id") is None else str(first_meta["run_id"]),
        metadata={"source": SOURCE, "sft_metadata": {k: v for k, v in first_meta.items() if k not in SESSION_KEYS}},
    )]
    for n, turn in enumerate(turns):
        out.append(make_event(
            Turn, event_id=stable_id(SOURCE, sid, "turn", n), session_id=sid, turn=n,
            done=n == len(turns) - 1, ts=turn.pop("ts") or created, **turn,
        ))
    out.append(make_event(
        SessionEnd, event_id=stable_id(SOURCE, sid, "end"), session_id=sid, ts=created,
        status="terminated", num_turns=len(turns), metadata={"source": SOURCE},
    ))
    total = None
    for *_, record in reversed(ordered):  # the latest line that knows the outcome
        value = _meta(record).get("total_reward")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            total = value
            break
    if total is not None:
        last_meta = _meta(ordered[-1][2])
        achievements = last_meta.get("achievements") if isinstance(last_meta.get("achievements"), list) else []
        out.append(make_event(
            OutcomeReward, event_id=stable_id(SOURCE, sid, "outcome"), session_id=sid, ts=created,
            total_reward=total, achievements=achievements, objective="reward", source=SOURCE,
            metadata={"achievements_count": last_meta.get("achievements_count")},
        ))
    return ImportedSession(sid, out)
