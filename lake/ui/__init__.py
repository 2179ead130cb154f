"""`python -m lake ui`: a read-only local web app over the lake (sessions, turns, runs, tasks, dead letters)."""

from typing import TYPE_CHECKING

from schemas.lazy import lazy_getattr

# Starlette, Jinja2 and uvicorn load only when the UI is used.
_LAZY = {"create_app": "lake.ui.app", "serve": "lake.ui.server", "PinnedReader": "lake.ui.reader"}

if TYPE_CHECKING:
    from lake.ui.app import create_app
    from lake.ui.reader import PinnedReader
    from lake.ui.server import serve

__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = ["PinnedReader", "create_app", "serve"]
