"""Hybrid retrieval with the standalone query; the strategy changes on a quality-gate retry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.runtime import Runtime

from zhiwen.graph.context import Context
from zhiwen.graph.state import Source, State
from zhiwen.memory.kb import Hit
from zhiwen.memory.registry import open_kb
from zhiwen.nodes._common import context_of

__all__ = ["retrieve", "to_sources"]


def to_sources(hits: list[Hit]) -> list[Source]:
    """Number the hits [1..n] as the model will see them."""
    return [
        {
            "n": i,
            "id": h.id,
            "doc_id": h.doc_id,
            "text": h.text,
            "score": h.score,
            "source": str(h.metadata.get("source", "")),
            "title": str(h.metadata.get("heading") or h.metadata.get("title") or ""),
            "metadata": {**h.metadata, "legs": h.legs},
        }
        for i, h in enumerate(hits, start=1)
    ]


async def retrieve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    start = time.perf_counter()
    ctx = context_of(runtime)
    intent = state["intent"]
    strategy = state.get("strategy", "default")
    query = intent["query"]
    top_k = ctx.top_k
    if strategy == "best_chunk":
        top_k = 1  # the small model does best with the single most likely chunk
    elif strategy == "wider":
        top_k = ctx.top_k * 2
    weights = {"bm25": ctx.bm25_weight, "dense": ctx.dense_weight}

    legs: dict[str, float] = {}

    def search() -> list[Hit]:  # opening a knowledge base touches disk: off the event loop, with the search
        return open_kb(ctx.kb).search(
            query, top_k=top_k, mode=ctx.retrieval_mode, weights=weights, rrf_k=ctx.rrf_k, timings=legs
        )

    hits = await asyncio.to_thread(search)
    timings = {"retrieval": time.perf_counter() - start, **{f"retrieval_{leg}": s for leg, s in legs.items()}}
    return {"sources": to_sources(hits), "timings": timings}
