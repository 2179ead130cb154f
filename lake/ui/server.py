"""Run the UI with uvicorn on a socket bound here, so a taken port is one clear error line."""

from __future__ import annotations

import errno
import socket
import sys
from typing import Any

from lake.exceptions import LakeError

__all__ = ["UiBindError", "bind", "serve"]


class UiBindError(LakeError, ValueError):
    """The UI's host/port cannot be bound."""


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        raise UiBindError(f"--host {host} --port {port} {why}; pick another with --port (0 = any free port)") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(lake_uri: str, *, host: str = "127.0.0.1", port: int = 8765, reader: str = "auto",
          storage_options: dict[str, str] | None = None, log_level: str = "warning", out: Any = None) -> None:
    """Serve the UI until interrupted; prints the URL (with the real port when --port 0) first."""
    import uvicorn

    from lake.pins import consistent_versions
    from lake.ui.app import create_app

    consistent_versions(lake_uri, storage_options=storage_options)  # a wrong LAKE_URI fails here, not per page
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    note = "" if host.startswith("127.") or host in ("localhost", "::1") else \
        " (NOT loopback: anyone who can reach this address can read the lake)"
    print(f"lake ui: {url} over {lake_uri}, read-only{note}; Ctrl-C stops", file=out or sys.stderr, flush=True)
    app = create_app(lake_uri, reader=reader, host=host, storage_options=storage_options)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
