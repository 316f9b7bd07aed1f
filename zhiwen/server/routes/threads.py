"""Conversation threads, persisted by the checkpointer: create, read history, delete."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Path, Request, Response
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

from zhiwen.server.access import principal_of
from zhiwen.server.errors import APIError
from zhiwen.server.public import public_sources
from zhiwen.server.runtime import runtime_of, stored_thread
from zhiwen.server.schemas import ThreadIn
from zhiwen.tools.llm import message_text

__all__ = ["router"]

router = APIRouter(prefix="/v1/threads", tags=["threads"])
ThreadId = Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _message(m: BaseMessage) -> dict[str, Any]:
    return {"role": _ROLES.get(m.type, m.type), "content": message_text(m)}


@router.post("", status_code=201, summary="Create a conversation thread")
async def create_thread(request: Request, body: ThreadIn | None = None) -> dict[str, Any]:
    rt = runtime_of(request)
    thread_id = uuid.uuid4().hex
    owner = principal_of(request).id
    await asyncio.to_thread(rt.quotas.claim, "thread", owner, stored_thread(request, thread_id))
    await rt.threaded.aupdate_state(
        _config(stored_thread(request, thread_id)), {"messages": []}, as_node="__start__"
    )
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
