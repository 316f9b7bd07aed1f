"""The jobs the CLI, the server and the eval runner share: one code path per job, three faces."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from zhiwen.memory.ingest import IngestReport, Progress, ingest_paths
from zhiwen.memory.kb import DEFAULT_FUSION, DEFAULT_RRF_K, DEFAULT_WEIGHTS, Hit, SearchMode
from zhiwen.memory.registry import close_all, drop_kb, forget_kb, get_embedder, open_kb
from zhiwen.settings import Settings

__all__ = ["close_all", "drop_kb", "forget_kb", "get_embedder", "ingest", "open_kb", "search"]


def ingest(
    name: str,
    paths: Iterable[Path],
    progress: Progress | None = None,
    settings: Settings | None = None,
    wait: bool = True,
) -> IngestReport:
    """``wait=False``: ``KnowledgeBaseBusy`` at once if another ingest is writing into it (the server)."""
    return ingest_paths(open_kb(name, create=True, settings=settings), paths, progress, wait=wait)


def search(
    name: str,
    query: str,
    top_k: int = 5,
    mode: SearchMode = "hybrid",
    settings: Settings | None = None,
    fusion: str = DEFAULT_FUSION,
    **options: float,
) -> list[Hit]:
    """Search a knowledge base; ``options`` may set ``bm25_weight``, ``dense_weight``, ``rrf_k``."""
    kb = open_kb(name, settings=settings)
    weights = {
        "bm25": options.get("bm25_weight", DEFAULT_WEIGHTS["bm25"]),
        "dense": options.get("dense_weight", DEFAULT_WEIGHTS["dense"]),
    }
    rrf_k = int(options.get("rrf_k", DEFAULT_RRF_K))
    return kb.search(query, top_k=top_k, mode=mode, weights=weights, rrf_k=rrf_k, fusion=fusion)
