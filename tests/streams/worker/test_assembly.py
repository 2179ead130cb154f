"""Session assembly: idempotent under replay, duplicates dropped, finalization and abandonment."""

from __future__ import annotations

from schemas import parse_event
from streams.devtools.synthetic import make_sessions
from streams.worker.assembly import fold_event, session_row, session_status

ROW_KW = dict(reward_grace_s=60, idle_timeout_s=600)


def _events(n_turns=3):
    return [parse_event(e) for e in make_sessions(1, n_turns, seed=3)[0].events]


def _fold_all(events, offsets=None, state=None):
    writes = []
    for i, ev in enumerate(events):
        off = offsets[i] if offsets else i
        fold = fold_event(state, ev, partition=0, offset=off, record_ms=1_000 + off)
        state = fold.state
        if fold.write_rows:
            writes.append((ev.type, off))
    return state, writes


def test_duplicates_at_other_offsets_are_dropped():
    events = _events()
    state, writes = _fold_all(events + events, offsets=list(range(2 * len(events))))
    assert len(state.turn_offsets) == 3
    # Turns and rewards of the first copy only are offered to the writer.
    assert all(off < len(events) for _, off in writes)
    assert state.step_reward_sum == sum(e.reward for e in events if e.type == "turn")


def test_replaying_the_same_offsets_on_a_state_that_already_holds_them_is_a_no_op():
    events = _events()
    state, writes = _fold_all(events)
    # After a crash the changelog may be ahead of the consumer: the same records come again.
    again, rewrites = _fold_all(events, state=state)
    assert again.turn_offsets == state.turn_offsets and again.step_reward_sum == state.step_reward_sum
    assert again.rewards == state.rewards
    assert rewrites == writes  # the same first sightings are offered again; the writer's offset check decides


def test_fold_does_not_mutate_the_callers_state():
    events = _events()
    state, _ = _fold_all(events[:2])
    before = repr(state)
    fold_event(state, events[2], partition=0, offset=99, record_ms=5)
    assert repr(state) == before


def test_reward_before_start_is_kept_and_the_latest_reward_wins():
    events = _events()
    reward = next(e for e in events if e.type == "outcome_reward")
    later = reward.model_copy(update={"event_id": "r2", "total_reward": 9.0, "ts": reward.ts.replace(year=2030)})
    order = [reward] + [e for e in events if e is not reward] + [later]
    state, _ = _fold_all(order)
    row = session_row(state, now_ms=2_000, **ROW_KW)
    assert row["total_reward"] == 9.0 and row["finalized"] and row["env_name"] == "crafter"


def test_end_without_reward_finalizes_after_the_grace_period():
    events = [e for e in _events() if e.type not in ("outcome_reward", "judgment")]
    state, _ = _fold_all(events)
    end_ms = state.end_record_ms
    assert session_status(state, now_ms=end_ms + 59_000, **ROW_KW) == (state.end.status, False)
    assert session_status(state, now_ms=end_ms + 61_000, **ROW_KW) == (state.end.status, True)


def test_silent_session_is_abandoned_after_the_idle_timeout():
    events = [e for e in _events() if e.type in ("session_start", "turn")][:2]
    state, _ = _fold_all(events)
    assert session_status(state, now_ms=state.last_record_ms + 1_000, **ROW_KW) == ("open", False)
    assert session_status(state, now_ms=state.last_record_ms + 601_000, **ROW_KW) == ("abandoned", True)


def test_missing_turns_are_visible():
    events = _events(5)
    dropped = [e for e in events if not (e.type == "turn" and e.turn == 2)]
    state, _ = _fold_all(dropped)
    row = session_row(state, now_ms=10_000, **ROW_KW)
    assert (row["num_turns"], row["turns_received"], row["missing_turns"]) == (5, 4, 1)


def test_a_session_read_back_from_the_lake_has_the_state_folding_built(tmp_path):
    """Eviction loses nothing: state_from_lake rebuilds every field fold_event filled (start and
    end offsets are not stored, and the start/end times come from the events' own ts)."""
    from dataclasses import replace
    from datetime import datetime

    from streams.worker.offline import write_events
    from streams.worker.sessions import LakeSessions

    events = _events(4)
    assert {e.type for e in events} == {"session_start", "turn", "session_end", "outcome_reward", "judgment"}
    lake = str(tmp_path / "lake")
    write_events(lake, events, topic="t", now=1_800_000_000.0)
    folded, _ = _fold_all(events)
    folded = replace(folded, topic="t", last_record_ms=1_800_000_000_000, first_record_ms=None)

    loaded, stored_status = LakeSessions(lake).load([folded.session_id], topic="t", partition_of={})[folded.session_id]

    def ms(iso):
        return int(datetime.fromisoformat(iso).timestamp() * 1000)

    assert stored_status == (folded.end.status, True)
    assert loaded == replace(
        folded, start=folded.start._replace(offset=-1), end=folded.end._replace(offset=-1),
        first_record_ms=ms(folded.start.ts), end_record_ms=ms(folded.end.ts),
    )
