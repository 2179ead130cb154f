"""`python -m lake ui`: a read-only web app over the lake, server-rendered (Starlette + Jinja2).

Every page is a GET that reads the lake through PinnedReader (pinned versions, sandboxed like
`lake sql`). Everything from task apps is autoescaped; the Content-Security-Policy allows no
script at all, so a `<script>` in a message can neither run nor load anything, even if escaping
were ever bypassed. Loopback servers accept only loopback Host headers (no DNS rebinding).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from lake.exceptions import FilterSpecError, LakeError
from lake.ui import queries
from lake.ui.charts import interval_chart
from lake.ui.forms import FIELDS, parse_filters, snapshot_command
from lake.ui.reader import PinnedReader

__all__ = ["create_app", "LOOPBACK_HOSTS"]

TEMPLATES = Path(__file__).parent / "templates"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
PAGE_SIZES = (25, 50, 100, 200)
COMPARE_BY = ("model", "run_id", "policy_name", "env_name", "status")

_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _int(params: Any, key: str, default: int, lo: int = 0, hi: int = 10**9) -> int:
    try:
        return min(max(int(params.get(key, default)), lo), hi)
    except (TypeError, ValueError):
        return default


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="seconds").replace("+00:00", "Z")
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    sign = "+" if seconds >= 0 else "-"
    s = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{sign}{s / size:.1f} {unit}"
    return f"{sign}{s:.1f} s"


def create_app(lake_uri: str, *, reader: str = "auto", host: str = "127.0.0.1",
               storage_options: dict[str, str] | None = None) -> Starlette:
    """The ASGI app over one lake; `host` decides which Host headers are accepted."""
    lake_reader = PinnedReader(lake_uri, reader=reader, storage_options=storage_options)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    templates = Jinja2Templates(env=env)
    env.filters["fmt"] = _fmt
    env.filters["duration"] = _duration
    env.globals.update(lake_uri=lake_uri, fields=FIELDS, page_sizes=PAGE_SIZES)

    def render(request: Request, name: str, context: dict[str, Any], status: int = 200,
               started: float | None = None) -> Response:
        context.setdefault("versions", None)
        context["render_ms"] = round((time.perf_counter() - (started or time.perf_counter())) * 1000)
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(_HEADERS)
        return response

    def failed(request: Request, exc: Exception, status: int, started: float) -> Response:
        return render(request, "error.html", {"error": str(exc), "title": "error"}, status, started)

    def link(path: str, params: dict[str, Any]) -> str:
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        return path + ("?" + urlencode(clean) if clean else "")

    def sessions_page(request: Request) -> Response:
        started = time.perf_counter()
        params = dict(request.query_params)
        try:
            given, spec = parse_filters(params)
        except FilterSpecError as exc:
            given, spec, error = {k: v for k, v in params.items() if k in {f.key for f in FIELDS}}, None, str(exc)
        else:
            error = None
        sort = params.get("sort") if params.get("sort") in queries.SESSION_SORTS else "started_at"
        size = _int(params, "size", 50)
        size = size if size in PAGE_SIZES else 50
        page = _int(params, "page", 1, lo=1)
        context: dict[str, Any] = {"title": "sessions", "given": given, "sort": sort, "size": size, "page": page,
                                   "error": error, "sorts": list(queries.SESSION_SORTS)}
        try:
            with lake_reader.pinned() as lake:
                context["versions"] = dict(lake.versions)
                context["choices"] = lake_reader.memo("choices", lambda: queries.choices(lake))
                if spec is not None:
                    key = ("counts", json.dumps(spec.to_dict(), sort_keys=True))
                    context.update(lake_reader.memo(key, lambda: queries.session_counts(lake, spec)))
                    context["rows"] = queries.list_sessions(lake, spec, sort=sort, offset=(page - 1) * size, limit=size)
                    context["command"] = snapshot_command(spec, lake_uri)
        except FilterSpecError as exc:
            context["error"] = str(exc)
        except LakeError as exc:
            return failed(request, exc, 503, started)
        if context.get("matched") is not None:
            pages = max(1, math.ceil(context["matched"] / size))
            base = {**given, "sort": sort if sort != "started_at" else None, "size": size if size != 50 else None}
            context.update(pages=pages,
                           prev_link=link("/", {**base, "page": page - 1}) if page > 1 else None,
                           next_link=link("/", {**base, "page": page + 1}) if page < pages else None,
                           sort_links={s: link("/", {**base, "sort": s}) for s in queries.SESSION_SORTS})
        return render(request, "sessions.html", context, 400 if context["error"] else 200, started)

    def session_page(request: Request) -> Response:
        started = time.perf_counter()
        session_id = request.query_params.get("id", "")
        try:
            with lake_reader.pinned() as lake:
                detail = queries.session_detail(lake, session_id)
                versions = dict(lake.versions)
        except LakeError as exc:
            return failed(request, exc, 503, started)
        if detail is None:
            return failed(request, LookupError(f"no session with session_id {session_id!r} in the lake "
                                               f"(at table versions {versions})"), 404, started)
        return render(request, "session.html", {**detail, "title": f"session {session_id}", "versions": versions,
                                                "truncate_chars": queries.TRUNCATE_CHARS}, 200, started)

    def message_page(request: Request) -> Response:
        started = time.perf_counter()
        q = request.query_params
        session_id = q.get("session", "")
        turn, idx = _int(q, "turn", -1, lo=-1), _int(q, "i", -1, lo=-1)
        try:
            with lake_reader.pinned() as lake:
                m = queries.message(lake, session_id, turn, idx)
        except LakeError as exc:
            return failed(request, exc, 503, started)
        if m is None:
            return failed(request, LookupError(f"no message {idx} in turn {turn} of session {session_id!r}"), 404, started)
        if q.get("raw"):
            # text/plain + nosniff: the browser shows the bytes and never parses them as HTML.
            text = m["content"] or ""
            if m["tool_calls"]:
                text += ("\n\n" if text else "") + "tool_calls: " + (m["tool_calls_pretty"] or "")
            return PlainTextResponse(text, headers=_HEADERS)
        return render(request, "message.html", {"m": m, "title": f"message {turn}/{idx}"}, 200, started)

    def runs_page(request: Request) -> Response:
        started = time.perf_counter()
        chosen = [c for c in request.query_params.get("by", "model,run_id").split(",") if c in COMPARE_BY]
        by = tuple(dict.fromkeys(chosen)) or ("model", "run_id")
        from lake.compare import compare_runs

        try:
            with lake_reader.pinned() as lake:
                rows = [dict(r) for r in lake_reader.memo(("runs", by), lambda: compare_runs(lake, by=by))]
                versions = dict(lake.versions)
        except LakeError as exc:
            return failed(request, exc, 503, started)
        for r in rows:
            r["label"] = " / ".join("(none)" if r[c] is None else str(r[c]) for c in by)
        charts = [
            interval_chart("achievements per session", rows, mean="achievements_mean", ci="achievements_ci95"),
            interval_chart("valid tool-call rate (share of valid turns per session)", rows,
                           mean="valid_tool_call_rate", ci="valid_tool_call_rate_ci95", fixed=(0.0, 1.0)),
            interval_chart("outcome reward (objective 'reward')", rows, mean="reward_mean", ci="reward_ci95"),
        ]
        return render(request, "runs.html", {"title": "runs", "rows": rows, "charts": charts, "by": by,
                                             "by_choices": COMPARE_BY, "versions": versions,
                                             "command": "python -m lake compare --by " + ",".join(by)}, 200, started)

    def tasks_page(request: Request) -> Response:
        started = time.perf_counter()
        q = request.query_params
        sort = q.get("sort") if q.get("sort") in queries.TASK_SORTS else "task_id"
        page = _int(q, "page", 1, lo=1)
        size = 100
        objective = q.get("objective") or None
        try:
            with lake_reader.pinned() as lake:
                rows = lake_reader.memo("tasks", lambda: queries.task_stats(lake))
                result = queries.task_page(rows, objective=objective, sort=sort, offset=(page - 1) * size, limit=size)
                versions = dict(lake.versions)
        except LakeError as exc:
            return failed(request, exc, 503, started)
        pages = max(1, math.ceil(result["total"] / size))
        base = {"objective": objective, "sort": sort if sort != "task_id" else None}
        return render(request, "tasks.html", {
            **result, "title": "tasks", "versions": versions, "sort": sort, "objective": objective, "page": page,
            "pages": pages, "sort_links": {s: link("/tasks", {**base, "sort": s}) for s in queries.TASK_SORTS},
            "prev_link": link("/tasks", {**base, "page": page - 1}) if page > 1 else None,
            "next_link": link("/tasks", {**base, "page": page + 1}) if page < pages else None,
        }, 200, started)

    def dead_letters_page(request: Request) -> Response:
        started = time.perf_counter()
        q = request.query_params
        page, size = _int(q, "page", 1, lo=1), 50
        try:
            with lake_reader.pinned() as lake:
                if "offset" in q:
                    row = queries.dead_letter(lake, q.get("topic", ""), _int(q, "partition", -1, lo=-1),
                                              _int(q, "offset", -1, lo=-1))
                    if row is None:
                        return failed(request, LookupError("no such dead letter"), 404, started)
                    return render(request, "dead_letter.html", {"r": row, "title": "dead letter",
                                                                "versions": dict(lake.versions)}, 200, started)
                result = queries.dead_letters(lake, offset=(page - 1) * size, limit=size)
                versions = dict(lake.versions)
        except LakeError as exc:
            return failed(request, exc, 503, started)
        pages = max(1, math.ceil(result["total"] / size))
        return render(request, "dead_letters.html", {
            **result, "title": "dead letters", "versions": versions, "page": page, "pages": pages,
            "prev_link": link("/dead-letters", {"page": page - 1}) if page > 1 else None,
            "next_link": link("/dead-letters", {"page": page + 1}) if page < pages else None,
        }, 200, started)

    routes = [
        Route("/", sessions_page, methods=["GET"]),
        Route("/session", session_page, methods=["GET"]),
        Route("/message", message_page, methods=["GET"]),
        Route("/runs", runs_page, methods=["GET"]),
        Route("/tasks", tasks_page, methods=["GET"]),
        Route("/dead-letters", dead_letters_page, methods=["GET"]),
    ]
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=[*LOOPBACK_HOSTS, host] if loopback else ["*"])]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        lake_reader.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.reader = lake_reader
    return app
