"""Conversation threads, persisted by the checkpointer: create, list, read history, rename, delete.

Which threads are a key's, and their titles, is the quota ledger's record (``quotas.py``); the messages are the
checkpointer's.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Path, Query, Request, Response
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

from zhiwen.graph.state import answer_extras
from zhiwen.server.access import principal_of, require_kb
from zhiwen.server.errors import APIError
from zhiwen.server.public import public_sources
from zhiwen.server.runtime import runtime_of, stored_thread
from zhiwen.server.schemas import ThreadIn, ThreadUpdate
from zhiwen.tools.llm import message_text

__all__ = ["router"]

router = APIRouter(prefix="/v1/threads", tags=["threads"])
ThreadId = Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _message(m: BaseMessage) -> dict[str, Any]:
    """A message as the API shows it; an answer with the sources its [n] refer to and its verdict."""
    shown: dict[str, Any] = {"role": _ROLES.get(m.type, m.type), "content": message_text(m)}
    extras = answer_extras(m)
    if extras:
        shown["sources"] = public_sources(extras.get("sources", []))
        shown["quality"] = extras.get("quality", {})
    return shown


def _seconds(iso: str | None, default: float) -> int:
    return int(datetime.fromisoformat(iso).timestamp()) if iso else int(default)


async def _listed(request: Request, stored: str, made: float, title: str, kb: str) -> dict[str, Any] | None:
    """A thread as ``GET /v1/threads`` shows it; None when the checkpointer has no such thread."""
    snapshot = await runtime_of(request).threaded.aget_state(_config(stored))
    if not snapshot.created_at:
        return None
    messages = (snapshot.values or {}).get("messages", [])
    asked = next((message_text(m) for m in messages if m.type == "human"), "")
    return {
        "id": stored.removeprefix(stored_thread(request, "")),
        "object": "thread",
        "title": title or " ".join(asked.split())[:80],
        "kb": kb or None,
        "created_at": int(made),
        "updated_at": _seconds(snapshot.created_at, made),
        "messages": len(messages),
    }


@router.get("", summary="The calling key's own threads, newest first (title, knowledge base, times)")
async def list_threads(
    request: Request, limit: int = Query(100, ge=1, le=1000, description="At most this many.")
) -> dict[str, Any]:
    rt = runtime_of(request)
    prefix = stored_thread(request, "")  # with keys, the key's own namespace: another key's never match
    rows = await asyncio.to_thread(rt.quotas.threads, principal_of(request).id, prefix, limit + 1)
    data = [await _listed(request, *row) for row in rows[:limit]]
    return {"object": "list", "data": [t for t in data if t is not None], "has_more": len(rows) > limit}


@router.post("", status_code=201, summary="Create a conversation thread")
async def create_thread(request: Request, body: ThreadIn | None = None) -> dict[str, Any]:
    """A thread that names a knowledge base (``kb``) needs one the key may use: 404 as on every surface."""
    rt = runtime_of(request)
    if body is not None and body.kb:
        await require_kb(body.kb, principal_of(request), "kb")
    thread_id = uuid.uuid4().hex
    owner = principal_of(request).id
    await asyncio.to_thread(rt.quotas.claim, "thread", owner, stored_thread(request, thread_id))
    await rt.threaded.aupdate_state(
        _config(stored_thread(request, thread_id)), {"messages": []}, as_node="__start__"
    )
    if body is not None and (body.kb or (body.title and body.title.strip())):
        title = body.title.strip() if body.title else None
        await asyncio.to_thread(rt.quotas.retitle, stored_thread(request, thread_id), title, body.kb or None)
    return {"id": thread_id, "object": "thread", "kb": (body.kb if body else None), "messages": []}


@router.get("/{thread_id}", summary="A thread's messages and last answer's sources and quality")
async def get_thread(request: Request, thread_id: str = ThreadId) -> dict[str, Any]:
    rt = runtime_of(request)
    snapshot = await rt.threaded.aget_state(_config(stored_thread(request, thread_id)))
    if not snapshot.created_at:
        raise APIError(404, f"no thread {thread_id!r}", "thread_id", "thread_not_found")
    values = snapshot.values or {}
    return {
        "id": thread_id,
        "object": "thread",
        "messages": [_message(m) for m in values.get("messages", [])],
        "sources": public_sources(values.get("sources", [])),
        "quality": values.get("quality", {}),
    }


@router.post("/{thread_id}", summary="Rename a thread (the title GET /v1/threads shows)")
async def rename_thread(request: Request, body: ThreadUpdate, thread_id: str = ThreadId) -> dict[str, Any]:
    rt = runtime_of(request)
    stored = stored_thread(request, thread_id)
    snapshot = await rt.threaded.aget_state(_config(stored))
    if not snapshot.created_at:
        raise APIError(404, f"no thread {thread_id!r}", "thread_id", "thread_not_found")
    owner = principal_of(request).id
    await asyncio.to_thread(rt.quotas.claim, "thread", owner, stored)  # a thread older than the ledger
    await asyncio.to_thread(rt.quotas.retitle, stored, body.title.strip())
    row = await asyncio.to_thread(rt.quotas.thread, owner, stored)
    listed = await _listed(request, *row) if row else None
    if listed is None:  # deleted meanwhile
        raise APIError(404, f"no thread {thread_id!r}", "thread_id", "thread_not_found")
    return listed


@router.delete("/{thread_id}", status_code=204, summary="Delete a thread and its history")
async def delete_thread(request: Request, thread_id: str = ThreadId) -> Response:
    rt = runtime_of(request)
    snapshot = await rt.threaded.aget_state(_config(stored_thread(request, thread_id)))
    if not snapshot.created_at:
        raise APIError(404, f"no thread {thread_id!r}", "thread_id", "thread_not_found")
    await rt.checkpointer.adelete_thread(stored_thread(request, thread_id))
    await asyncio.to_thread(
        rt.quotas.release, "thread", stored_thread(request, thread_id), principal_of(request).id
    )
    return Response(status_code=204)
