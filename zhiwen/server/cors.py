"""Starlette's CORS middleware, with a refused preflight answered in the API's JSON error shape.

Starlette answers a preflight it refuses with the plain text "Disallowed CORS origin"; every other refusal
this server makes is an OpenAI-style JSON body that says what to change, so this one is too.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from zhiwen.server.errors import error_body

__all__ = ["JSONCORSMiddleware"]


class JSONCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code != 400:
            return answer
        what = {
            "origin": f"the origin {request_headers.get('origin', '')!r} is not in ZHIWEN_CORS_ORIGINS",
            "method": f"the method is not one of {', '.join(sorted(self.allow_methods))}",
            "headers": f"a requested header is not one of {', '.join(sorted(self.allow_headers))}",
            "private-network": "private-network access is not allowed",
        }
        failures = bytes(answer.body).decode().removeprefix("Disallowed CORS ").split(", ")
        message = "CORS preflight refused: " + "; ".join(what.get(f, f) for f in failures)
        headers = {k: v for k, v in answer.headers.items() if k not in ("content-length", "content-type")}
        return JSONResponse(error_body(400, message), status_code=400, headers=headers)
