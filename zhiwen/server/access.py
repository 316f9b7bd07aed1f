"""What a request's key may do: FastAPI dependencies for admin-only routes and knowledge-base scopes.

A chat key that names a knowledge base outside its scope is told it does not exist, in the same words as
for one that really does not (its existence is not revealed); a chat key on a management route gets 403.
"""

from __future__ import annotations

import asyncio
import shlex
from typing import Annotated

from fastapi import Depends, Request

from zhiwen.memory.kb import kb_exists, list_kbs
from zhiwen.server.errors import APIError
from zhiwen.server.guard import PRINCIPAL
from zhiwen.server.keyring import OPEN, Principal
from zhiwen.settings import get_settings

__all__ = ["Admin", "Caller", "kb_not_found", "principal_of", "require_admin", "require_kb"]


def principal_of(request: Request) -> Principal:
    """The caller (the open principal where no guard ran: an app built without keys)."""
    found = request.scope.get("state", {}).get(PRINCIPAL)
    return found if isinstance(found, Principal) else OPEN


def require_admin(request: Request) -> Principal:
    principal = principal_of(request)
    if not principal.admin:
        raise APIError(
            403,
            "this API key is a chat key: it may chat, search, list models and keep its own threads on the "
            "knowledge bases it is scoped to; managing knowledge bases needs an admin key",
            None,
            "permission_denied",
        )
    return principal


def kb_not_found(name: str, visible: list[str]) -> str:
    """The message for a knowledge base that does not exist or that the caller may not use."""
    known = ", ".join(visible) or "none"
    return (
        f"no knowledge base named {name!r} (yours: {known}); an admin creates one with POST /v1/kbs "
        f"or `zhiwen ingest PATH --kb {shlex.quote(name)}`"
    )


async def require_kb(name: str, caller: Principal = OPEN, param: str = "name") -> None:
    """404 for a knowledge base that does not exist or that ``caller`` may not use: the same answer.

    The checks run off the event loop: a file-system or database look-up may stall every stream.
    """
    root = get_settings().kb_root
    if not caller.may_use(name) or not await asyncio.to_thread(kb_exists, root, name):
        rows = await asyncio.to_thread(list_kbs, root)
        visible = [n for n, _, _ in rows if caller.may_use(n)]
        raise APIError(404, kb_not_found(name, visible), param, "kb_not_found")


Caller = Annotated[Principal, Depends(principal_of)]
Admin = Annotated[Principal, Depends(require_admin)]
