"""Every HTTP request counted (``zhiwen_requests_total{route,status}``) and timed, whatever answered it.

The chat route counted its own turns only: a 401, a 400, a 429 from the rate limit, a 499, uploads, threads
and feedback moved nothing, so the dashboard's errors-by-code panel never showed rate limiting or refused
keys. Counted here, outermost, from the status the response starts with. ``route`` is bounded: the matched
route's path template (``/v1/kbs/{name}/documents``), ``unmatched`` for a path no route has, and for chat
``chat`` or ``chat_stream``, which the chat route sets in the request's state together with a stream's
real outcome (an error inside a stream that began 200).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestMetrics", "set_outcome"]

_ROUTE = "zhiwen_metrics_route"
_STATUS = "zhiwen_metrics_status"


def set_outcome(state: Any, route: str | None = None, status: int | None = None) -> None:
    """Name the request's ``route`` label, or the ``status`` its stream ended with (a request's state)."""
    if route is not None:
        setattr(state, _ROUTE, route)
    if status is not None:
        setattr(state, _STATUS, status)


class RequestMetrics:
    """``paths``: the app's route templates, to name the route of a request refused before routing."""

    def __init__(self, app: ASGIApp, paths: Sequence[str] = ()) -> None:
        self.app = app
        self.templates = [(compile_path(p)[0], p) for p in dict.fromkeys(paths)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server's error handler answers when the app raises before responding

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._count(scope, status, time.perf_counter() - started)

    def _count(self, scope: Scope, status: int, seconds: float) -> None:
        runtime = getattr(getattr(scope.get("app"), "state", None), "zhiwen", None)
        if runtime is None:  # before start-up finished, or after shutdown
            return
        state = scope.get("state") or {}
        route = state.get(_ROUTE) or _route_of(scope, self.templates)
        status = state.get(_STATUS) or status
        runtime.metrics.requests.labels(route, str(status)).inc()
        runtime.metrics.latency.labels(route).observe(seconds)


_CHAT = "/v1/chat/completions"  # refused before its handler (a key, the rate limit, a bad body): "chat"


def _route_of(scope: Scope, templates: Sequence[tuple[re.Pattern[str], str]]) -> str:
    """The path template of the route that took the request, found again when the guard refused it before
    routing (a 401 or a 429 would otherwise be "unmatched")."""
    path = getattr(scope.get("route"), "path", None)
    if path is None:
        path = next((template for regex, template in templates if regex.match(scope["path"])), None)
    if path == _CHAT:
        return "chat"
    return str(path) if path else "unmatched"
