"""Commit hooks the fault tests install in worker processes (WORKER_HOOKS=tests.faults.hooks:KillAt).

KILL_BEFORE_COMMIT=N, KILL_AFTER_APPENDS=N or KILL_AFTER_COMMIT=N SIGKILL the worker at its N-th
batch commit: before any Delta write, between the appends and the sessions MERGE, or after the
whole batch is in the lake but before its records are acknowledged. FAIL_AFTER_APPENDS=N makes
the N-th commit raise between the appends and the MERGE instead, as a store that went away would.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)


class KillAt:
    def __init__(self) -> None:
        self.points = {
            point: int(os.environ[f"KILL_{point.upper()}"])
            for point in ("before_commit", "after_appends", "after_commit")
            if os.environ.get(f"KILL_{point.upper()}")
        }

    def _maybe_die(self, point: str, n: int) -> None:
        if self.points.get(point) == n:
            log.warning("fault injection: SIGKILL %s %d", point.replace("_", " "), n)
            os.kill(os.getpid(), signal.SIGKILL)

    def before_commit(self, n: int) -> None:
        self._maybe_die("before_commit", n)

    def after_appends(self, n: int) -> None:
        self._maybe_die("after_appends", n)
        if os.environ.get("FAIL_AFTER_APPENDS") == str(n):
            log.warning("fault injection: commit %d fails after its appends", n)
            raise OSError(f"fault injection: the store went away during commit {n}")

    def after_commit(self, n: int) -> None:
        self._maybe_die("after_commit", n)
