"""Requests a server without keys must refuse: other web sites' pages, and DNS rebinding.

An open server (``ZHIWEN_ALLOW_OPEN``, no key exists) answers anyone who reaches it, and a browser reaches it
on behalf of any page the user opens: a page from another site can post to ``http://127.0.0.1:8000`` (its
``Origin`` says so), and a site whose name is made to resolve to 127.0.0.1 can read the answers (its name is
then the ``Host``). So in open mode the ``Host`` must be the server's own (a loopback name, the address the
connection came in on, or ``ZHIWEN_ALLOWED_HOSTS``), and an ``Origin``, when sent, must be the server itself
or one of ``ZHIWEN_CORS_ORIGINS``. Clients that send no ``Origin`` (curl, SDKs, chat UIs' back ends) pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import Scope

__all__ = ["foreign_request"]

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _host_name(host: str) -> str:
    """``Host`` without its port, lower-cased; IPv6 literals keep their brackets off."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def foreign_request(scope: Scope, cors_origins: list[str], allowed_hosts: list[str]) -> str:
    """Why ``scope`` must be refused on an open server, or "" when it may go ahead."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
    host = headers.get("host", "")
    own = set(_LOOPBACK) | {h.lower() for h in allowed_hosts}
    server = scope.get("server")
    if server:
        own.add(str(server[0]).lower())
    if _host_name(host) not in own:
        return (
            f"Host {host!r} is not this server's: a server without API keys answers only its own names "
            "(add yours to ZHIWEN_ALLOWED_HOSTS, or use API keys)"
        )
    origin = headers.get("origin")
    if origin is None:
        return ""
    if origin.rstrip("/") in {o.rstrip("/") for o in cors_origins}:
        return ""
    parts = urlsplit(origin)
    if parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower():
        return ""  # the server's own page
    return (
        f"requests from the web page at {origin} are refused: a server without API keys answers only its own "
        "pages and clients that send no Origin (allow a site with ZHIWEN_CORS_ORIGINS, or use API keys)"
    )
