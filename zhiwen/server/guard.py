"""ASGI middleware for what every API request must pass: API key, rate and concurrency limits, body size.

The key's principal (role, knowledge-base scope) is left in the request state for the routes to check.

Written as plain ASGI (not a FastAPI dependency) so the concurrency slot is held until a streamed
response has really finished, and oversized bodies are refused while they are read.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhiwen.server.coordination import CoordinationUnavailable, Coordinator, LocalCoordinator
from zhiwen.server.errors import error_body
from zhiwen.server.keyring import KeyRing
from zhiwen.server.origins import foreign_request
from zhiwen.server.settings import ServerSettings

__all__ = ["OPEN_PATHS", "OWNER", "PRINCIPAL", "Guard"]

OWNER = "zhiwen_owner"
"""The request-state entry naming the API key a request came with (empty when the server is open)."""
PRINCIPAL = "zhiwen_principal"
"""The request-state entry holding the caller's ``keyring.Principal``."""

log = logging.getLogger("zhiwen.server")

OPEN_PATHS = ("/health", "/live", "/ready", "/metrics", "/docs", "/redoc", "/openapi.json", "/")
"""Paths served without a key; so is everything under ``/docs`` and ``/ui/`` (the web page's assets: the page
asks for a key and sends it with every API call)."""


class _BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing passes it on instead of answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class Guard:
    """Authenticates (constant-time compare), rate-limits per key (``coordination``: per process, or across
    replicas through the shared database), and caps request bodies."""

    def __init__(
        self, app: ASGIApp, settings: ServerSettings, keyring: KeyRing, limits: Coordinator | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self.keyring = keyring
        self.limits = limits or LocalCoordinator(settings.rate_per_minute, settings.max_concurrent)
        self.stats: dict[str, int] = defaultdict(int)

    async def _reply(
        self,
        send: Send,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        body = json.dumps(error_body(status, message, code=code)).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _token(scope: Scope) -> bytes:
        auth = dict(scope.get("headers") or []).get(b"authorization", b"")
        return auth[7:].strip() if auth[:7].lower() == b"bearer " else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path == "/feishu/events":  # Feishu sends no key: the route checks the request's signature itself
            await self.app(scope, receive, send)
            return
        if not self.keyring.guarded:
            refusal = foreign_request(scope, self.settings.cors_origin_list, self.settings.allowed_host_list)
            if refusal:
                await self._reply(send, 403, refusal)
                return
        if path in OPEN_PATHS or path.startswith(("/docs", "/ui/")):
            await self.app(scope, receive, send)
            return
        principal = self.keyring.identify(self._token(scope))
        if principal is None:
            await self._reply(send, 401, "missing, invalid or revoked API key (send Authorization: Bearer <key>)",
                              {"WWW-Authenticate": "Bearer"})  # fmt: skip
            return
        state = scope.setdefault("state", {})
        state[OWNER], state[PRINCIPAL] = principal.owner, principal
        try:
            wait, slot = await self.limits.take(principal.id)
        except CoordinationUnavailable as exc:
            log.warning("shared database %s unreachable: %s", exc.where, exc.__cause__)
            await self._reply(send, 503, str(exc), {"Retry-After": "5"}, code="store_unavailable")
            return
        if wait > 0:
            await self._reply(send, 429, "rate or concurrency limit reached; retry later",
                              {"Retry-After": str(max(1, math.ceil(wait)))})  # fmt: skip
            return
        limit = self.settings.max_upload_bytes if "/documents" in path else self.settings.max_body_bytes
        try:
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                await self._reply(send, 413, f"request body larger than {limit} bytes")
                return
            await self._guarded(scope, receive, send, limit)
        finally:
            await self.limits.release(slot)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reply(send, 413, f"request body larger than {limit} bytes")
