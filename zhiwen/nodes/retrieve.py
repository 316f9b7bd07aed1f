"""Hybrid retrieval with the standalone query; the strategy changes on a quality-gate retry."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from langgraph.runtime import Runtime

from zhiwen.graph.context import Context
from zhiwen.graph.state import Source, State
from zhiwen.memory.kb import Hit
from zhiwen.memory.registry import open_kb
from zhiwen.nodes._common import context_of
from zhiwen.settings import get_settings
from zhiwen.tools.rerank import Reranker, RerankFailed

log = logging.getLogger("zhiwen.retrieve")

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
    reranker = _reranker(ctx)
    fetch = max(top_k, ctx.rerank_candidates) if reranker else top_k

    def search() -> list[Hit]:  # opening a knowledge base touches disk: off the event loop, with the search
        return open_kb(ctx.kb).search(
            query,
            top_k=fetch,
            mode=ctx.retrieval_mode,
            weights=weights,
            rrf_k=ctx.rrf_k,
            timings=legs,
            fusion=ctx.fusion,
        )

    hits = await asyncio.to_thread(search)
    timings = {f"retrieval_{leg}": s for leg, s in legs.items()}
    if reranker is not None and len(hits) > 1:
        hits = await _reranked(reranker, query, hits, timings)
    timings["retrieval"] = time.perf_counter() - start
    return {"sources": to_sources(hits[:top_k]), "timings": timings}


def _reranker(ctx: Context) -> Reranker | None:
    settings = get_settings()
    base_url = ctx.rerank_base_url or settings.rerank_base_url
    if not (ctx.rerank and base_url):
        return None
    return Reranker(base_url, settings.rerank_model, settings.rerank_api, settings.rerank_api_key,
                    settings.rerank_timeout)  # fmt: skip


async def _reranked(reranker: Reranker, query: str, hits: list[Hit], timings: dict[str, float]) -> list[Hit]:
    """``hits`` in the reranker's order (its rank and score added to each hit's legs), and ``rerank`` in
    ``timings``; on failure the fused order, and ``rerank_failed_<kind>`` counted in ``timings``."""
    started = time.perf_counter()
    try:
        scores = await asyncio.to_thread(reranker.scores, query, [h.text for h in hits])
    except RerankFailed as exc:
        log.warning("rerank failed, the fused order stands: %s", exc)
        timings[f"rerank_failed_{exc.kind}"] = 1.0
        return hits
    finally:
        timings["rerank"] = time.perf_counter() - started
    order = sorted(range(len(hits)), key=lambda i: -scores[i])
    for rank, i in enumerate(order, start=1):
        hits[i].legs["rerank"] = {"rank": float(rank), "score": scores[i]}
    return [hits[i] for i in order]
