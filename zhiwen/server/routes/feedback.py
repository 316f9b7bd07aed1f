"""Ratings of answers: ``POST /v1/feedback`` stores a thread's latest answer with its rating (memory/feedback)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from langchain_core.messages import AIMessage, HumanMessage

from zhiwen.memory.feedback import Feedback, Rating
from zhiwen.server.access import kb_not_found, principal_of
from zhiwen.server.errors import APIError
from zhiwen.server.public import public_source
from zhiwen.server.runtime import runtime_of, stored_thread
from zhiwen.server.schemas import FeedbackIn
from zhiwen.tools.llm import message_text

__all__ = ["rated_turn", "router"]

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


def _kept(source: dict[str, Any]) -> dict[str, Any]:
    """What of a source a rating keeps: its number, chunk id, file name (not the server's path) and text."""
    return {
        "n": source.get("n"),
        "id": source.get("id"),
        "source": public_source(str(source.get("source", ""))),
        "title": source.get("title", ""),
        "text": source.get("text", ""),
    }


@router.post("", status_code=201, summary="Rate a thread's latest answer (👍/👎, optional comment)")
async def rate(body: FeedbackIn, request: Request) -> dict[str, Any]:
    rt = runtime_of(request)
    caller = principal_of(request)
    if body.kb and not caller.may_use(body.kb):
        raise APIError(404, kb_not_found(body.kb, sorted(caller.kbs)), "kb", "kb_not_found")
    config = {"configurable": {"thread_id": stored_thread(request, body.thread_id)}}
    snapshot = await rt.threaded.aget_state(config)  # type: ignore[arg-type]
    if not snapshot.created_at:
        raise APIError(404, f"no thread {body.thread_id!r}", "thread_id", "thread_not_found")
    item = rated_turn(snapshot.values or {}, body.thread_id, body.rating, body.comment.strip(), body.kb)
    if item is None:
        raise APIError(400, f"thread {body.thread_id!r} has no answer to rate yet", "thread_id", "no_answer")
    await asyncio.to_thread(rt.feedback.add, item, caller.id)
    rt.metrics.feedback.labels(body.rating).inc()
    return {"id": item.id, "object": "feedback", "thread_id": body.thread_id, "rating": body.rating}


def rated_turn(
    values: dict[str, Any], thread_id: str, rating: Rating, comment: str, kb: str
) -> Feedback | None:
    """The rating of the turn whose state is ``values`` (None when it holds no answer): the Feishu card's
    buttons store theirs through it too."""
    messages = values.get("messages", [])
    if not messages or not isinstance(messages[-1], AIMessage):
        return None
    asked = next((message_text(m) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
    intent = values.get("intent") or {}
    return Feedback(
        thread_id=thread_id,
        rating=rating,
        question=str(intent.get("query") or asked),  # the standalone question a follow-up was condensed to
        answer=message_text(messages[-1]),
        comment=comment,
        kb=kb,
        verdict=str((values.get("quality") or {}).get("verdict", "")),
        sources=[_kept(s) for s in values.get("sources", [])],
    )
