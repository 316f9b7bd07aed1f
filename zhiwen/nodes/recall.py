"""Answer a question asked before from the answer cache (``memory/answer_cache``), or pass it on to retrieval.

A hit ends the turn with the stored answer, its sources and its quality report marked ``cached``; no model
call is made. On a miss the key goes into the state, and ``evaluate`` stores the answer if the gate passes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from langgraph.runtime import Runtime

from zhiwen.errors import ZhiwenError, first_line
from zhiwen.graph.context import Context
from zhiwen.graph.state import State, answer_message
from zhiwen.memory.answer_cache import answer_cache_key, get_answer_cache
from zhiwen.memory.registry import open_kb
from zhiwen.nodes._common import context_of
from zhiwen.settings import get_settings
from zhiwen.tools.grounding import has_words

__all__ = ["recall", "remember"]


def _lookup(ctx: Context, question: str, language: str) -> tuple[str, dict[str, Any] | None]:
    cache = get_answer_cache()
    if cache is None:
        return "", None
    try:
        kb = open_kb(ctx.kb)
    except ZhiwenError:  # no such base: retrieval reports it
        return "", None
    settings = get_settings()
    key = answer_cache_key(ctx, question, language, kb.catalog.generation, kb.allowed_contacts(), settings)
    return key, cache.get(key)


_log = logging.getLogger("zhiwen.answer_cache")


async def recall(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    start = time.perf_counter()
    ctx = context_of(runtime)
    if not ctx.answer_cache:
        return {"cache_key": ""}
    intent = state["intent"]
    key, hit = await asyncio.to_thread(_lookup, ctx, intent["query"], intent["language"])
    spent = time.perf_counter() - start
    if hit is None:
        return {"cache_key": key, "timings": {"answer_cache_miss": spent} if key else {}}
    answer = str(hit["answer"])
    quality = {**hit["quality"], "cached": True}
    return {
        "cache_key": "",
        "answer": answer,
        "sources": hit["sources"],
        "quality": quality,
        "messages": [answer_message(answer, hit["sources"], quality)],
        "timings": {"answer_cache_hit": spent},
    }


def remember(key: str, answer: str, sources: list[Any], quality: dict[str, Any]) -> None:
    """Store a passed answer under ``key`` (blocking: call it in a worker thread).

    An answer with no word in it is never stored (a hit would serve it to everyone who asks), and a cache
    that cannot take the answer costs the cache entry, not the turn: the customer still gets the answer."""
    cache = get_answer_cache()
    if cache is None or not key or not has_words(answer):
        return
    try:
        cache.put(key, {"answer": answer, "sources": sources, "quality": quality})
    except Exception as exc:  # a shared database down, text it refuses: the answer stands without the cache
        _log.warning("answer cache: could not store an answer (%s)", first_line(exc))
