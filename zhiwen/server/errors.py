"""Every error leaves the server as OpenAI's body: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from zhiwen.errors import (
    EmbeddingModelMismatch,
    KnowledgeBaseBusy,
    KnowledgeBaseNotFound,
    LLMUnavailable,
    StoreUnavailable,
    ZhiwenError,
    first_line,
)
from zhiwen.server.coordination import CoordinationUnavailable

__all__ = ["APIError", "error_body", "install_error_handlers", "public_message"]

log = logging.getLogger("zhiwen.server")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error",
          413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
          429: "rate_limit_error", 502: "upstream_error", 503: "service_unavailable", 504: "upstream_timeout"}  # fmt: skip


def error_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }


def public_message(exc: BaseException) -> str:
    """What a client may be told of ``exc``: zhiwen's own one-line message, or its summary for the model
    endpoint (never an upstream body, a log line or a path); anything else only by kind (the log has it)."""
    if isinstance(exc, LLMUnavailable):
        return exc.public
    if isinstance(exc, ZhiwenError):
        return first_line(exc)
    return f"{type(exc).__name__} (details are in the server's log)"


class APIError(Exception):
    """Raise from a route to answer ``status`` with an OpenAI-style error body."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


def _json(status: int, message: str, param: str | None = None, code: str | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


# pydantic tags a union's members: "str", "list[TextPart]", "function-after[_unicode(), str]"...
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|none|[\w-]+\[.*\])$")


def _loc(error: Any) -> list[str]:
    """The field path without where it came from ('body', 'query'...) and without union member tags."""
    loc = list(error.get("loc", ()))
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    return [str(p) for p in loc if not (isinstance(p, str) and _UNION_MEMBER.match(p))]


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    if tuple(first.get("loc", ())) == ("body",):  # the body as a whole: nothing sent, or not read as JSON
        if first.get("type") == "missing":
            return "the request body is empty: send a JSON object (Content-Type: application/json)", None
        if isinstance(first.get("input"), (str, bytes)):
            return "the request body is not a JSON object: send one with Content-Type: application/json", None
    # Of the alternatives of one union (e.g. content: str | list of parts), the deepest came closest.
    prefix = _loc(first)
    same = [e for e in errors if _loc(e)[: len(prefix)] == prefix]
    best = max(same, key=lambda e: len(_loc(e)))
    param = ".".join(_loc(best)) or None
    msg = str(best.get("msg", "invalid value"))
    return (f"{param}: {msg}" if param else msg), param


def _database_errors() -> list[type[Exception]]:
    """psycopg's connection-loss errors, when the PostgreSQL extra is installed."""
    try:
        import psycopg
        from psycopg_pool import PoolTimeout
    except ImportError:
        return []
    return [psycopg.OperationalError, PoolTimeout]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return _json(exc.status, exc.message, exc.param, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return _json(400, message, param, "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if isinstance(exc.__cause__, UnicodeDecodeError):  # FastAPI's "There was an error parsing the body"
            detail = "the request body is not valid UTF-8"
        return _json(exc.status_code, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(KnowledgeBaseNotFound)
    async def _kb_missing(_: Request, exc: KnowledgeBaseNotFound) -> JSONResponse:
        return _json(404, str(exc), "model", "model_not_found")

    @app.exception_handler(KnowledgeBaseBusy)
    async def _busy(_: Request, exc: KnowledgeBaseBusy) -> JSONResponse:
        return _json(409, str(exc), code="kb_busy", headers={"Retry-After": "5"})

    @app.exception_handler(EmbeddingModelMismatch)
    async def _mismatch(_: Request, exc: EmbeddingModelMismatch) -> JSONResponse:
        return _json(409, str(exc), code="embedding_model_mismatch")

    @app.exception_handler(LLMUnavailable)
    async def _llm(_: Request, exc: LLMUnavailable) -> JSONResponse:
        log.warning("model endpoint unavailable: %s", exc.detail)
        return _json(502, public_message(exc), code="upstream_unavailable")

    @app.exception_handler(CoordinationUnavailable)
    async def _coordination(_: Request, exc: CoordinationUnavailable) -> JSONResponse:
        log.warning("shared database %s unreachable: %s", exc.where, exc.__cause__)
        return _json(503, str(exc), code="store_unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(StoreUnavailable)
    async def _store(_: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("%s", exc)
        return _json(503, "the shared database is unreachable; retry later", code="store_unavailable",
                     headers={"Retry-After": "5"})  # fmt: skip

    for lost in _database_errors():  # the catalog's database went away mid-request (restart, failover)

        @app.exception_handler(lost)
        async def _lost(_: Request, exc: Exception) -> JSONResponse:
            log.warning("shared database unreachable: %s", exc)
            return _json(503, f"the shared database is unreachable ({type(exc).__name__}); retry later",
                         code="store_unavailable", headers={"Retry-After": "5"})  # fmt: skip

    @app.exception_handler(ZhiwenError)
    async def _zhiwen(_: Request, exc: ZhiwenError) -> JSONResponse:
        return _json(400, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _json(500, f"internal error ({type(exc).__name__}); see the server log", code="internal_error")
