"""The web chat page: ``/`` and its assets under ``/ui/``, served from the package (no CDN, works offline).

The page itself needs no key: it asks for one and sends it with every API call. Everything it shows from a
model or a document is set as text, and the Content-Security-Policy below allows only this server's own
scripts, styles and connections, so a hostile document cannot run script in it.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from zhiwen.server.errors import APIError

__all__ = ["CSP", "router"]

router = APIRouter(tags=["web"], include_in_schema=False)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

_BODIES = {name: files("zhiwen.server").joinpath("web", name).read_bytes() for name in _TYPES}
"""Read once, at import: three small files, and no file read on the event loop."""


def _asset(name: str) -> Response:
    if name not in _BODIES:
        raise APIError(404, f"no such page asset {name!r}", None, "not_found")
    return Response(_BODIES[name], media_type=_TYPES[name], headers=_HEADERS)


@router.get("/", summary="The web chat page")
@router.head("/", summary="The web chat page's headers (uptime checks probe with HEAD)")
async def page() -> Response:
    return _asset("index.html")


@router.get("/ui/{name}", summary="The web chat page's script and style sheet")
async def asset(name: str) -> Response:
    return _asset(name)
