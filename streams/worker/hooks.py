"""Commit hooks: where tests (or operators' plugins) step into the commit path.

`WORKER_HOOKS=module:attribute` names an object with any of these methods; the worker calls
them in its commit thread. The fault-injection tests install one that SIGKILLs the process at
a chosen commit; production runs with none.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

__all__ = ["CommitHooks", "NoHooks", "load_hooks"]


class CommitHooks(Protocol):
    def before_commit(self, n: int) -> None:
        """Before the n-th batch's first Delta write."""

    def after_appends(self, n: int) -> None:
        """After the n-th batch's appends, before its sessions MERGE."""

    def after_commit(self, n: int) -> None:
        """After the n-th batch is in the lake, before its records are acknowledged."""


class NoHooks:
    def before_commit(self, n: int) -> None:
        pass

    def after_appends(self, n: int) -> None:
        pass

    def after_commit(self, n: int) -> None:
        pass


def load_hooks(spec: str | None) -> CommitHooks:
    """The hooks object `module:attribute` names (a class is instantiated), or no hooks."""
    if not spec:
        return NoHooks()
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"WORKER_HOOKS={spec!r}: expected 'module:attribute', e.g. 'tests.faults.hooks:KillAt'")
    obj: Any = getattr(importlib.import_module(module_name), attr)
    obj = obj() if isinstance(obj, type) else obj
    base = NoHooks()
    for name in ("before_commit", "after_appends", "after_commit"):
        if not hasattr(obj, name):
            setattr(obj, name, getattr(base, name))
    return obj
