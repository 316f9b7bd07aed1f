"""Dense vectors in Chroma (embedded PersistentClient, or HttpClient for a shared Chroma server).

zhiwen computes vectors itself and hands them to Chroma, so no Chroma embedding function is involved;
the embedding model's name is kept in the collection metadata and checked on every open.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from zhiwen.errors import EmbeddingModelMismatch, ZhiwenError
from zhiwen.settings import redact_url
from zhiwen.tools.bm25 import ScoredId
from zhiwen.tools.embeddings import Vectors

__all__ = ["VectorStore", "drop_server_collection"]

_COLLECTION = "chunks"
_MAX_BATCH = 5000


def _server_client() -> Any | None:
    """A client of the shared Chroma server ``ZHIWEN_CHROMA_URL``, or None when it is not set."""
    url = os.environ.get("ZHIWEN_CHROMA_URL")
    if not url:
        return None
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ZhiwenError(f"ZHIWEN_CHROMA_URL must be an http(s)://host:port URL (got {redact_url(url)!r})")
    return chromadb.HttpClient(
        host=parsed.hostname, port=parsed.port or 8000, ssl=parsed.scheme == "https",
        settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False),
    )  # fmt: skip


def drop_server_collection(name: str) -> None:
    """Delete a dropped knowledge base's collection from the shared Chroma server (no-op without one)."""
    server = _server_client()
    if server is None:
        return
    from chromadb.errors import NotFoundError

    try:
        server.delete_collection(name)
    except NotFoundError:
        pass  # never written to, or dropped by another replica


class VectorStore:
    """One Chroma collection of chunk vectors, tagged with the chunks' document id."""

    def __init__(self, path: Path, embedding_model: str, server_collection: str) -> None:
        """Vectors in the Chroma folder ``path``, or in ``server_collection`` of ``ZHIWEN_CHROMA_URL``."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        server = _server_client()
        if server is not None:
            self._client: Any = server
            collection = server_collection
        else:
            self._client = chromadb.PersistentClient(
                path=str(path), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
            )
            collection = _COLLECTION
        self._col = self._client.get_or_create_collection(
            collection,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedding_model": embedding_model},
        )
        stored = (self._col.metadata or {}).get("embedding_model")
        if stored != embedding_model:
            self.close()
            raise EmbeddingModelMismatch(
                f"this knowledge base was embedded with {stored!r}, but the configured model is "
                f"{embedding_model!r}; use the same model, or re-ingest into a new knowledge base"
            )

    def close(self) -> None:
        """Release this client's share of Chroma's per-folder system; the last one out stops it.

        Chroma caches one system per folder for the whole process: without this, a knowledge base
        deleted and created again under the same name in one process (a server) writes through
        the stale system to deleted files ("attempt to write a readonly database").
        """
        close = getattr(self._client, "close", None)  # chromadb >= 1.1; absent from its type stubs
        if close is not None:
            close()

    def count(self) -> int:
        return int(self._col.count())

    def upsert(self, ids: list[str], vectors: Vectors, doc_ids: list[str]) -> None:
        for i in range(0, len(ids), _MAX_BATCH):
            sl = slice(i, i + _MAX_BATCH)
            metas: list[Any] = [{"doc_id": d} for d in doc_ids[sl]]
            self._col.upsert(ids=ids[sl], embeddings=np.asarray(vectors[sl]), metadatas=metas)

    def delete(self, ids: list[str]) -> None:
        for i in range(0, len(ids), _MAX_BATCH):
            self._col.delete(ids=ids[i : i + _MAX_BATCH])

    def all_ids(self) -> set[str]:
        return set(self._col.get(include=[])["ids"])

    def search(self, vector: Vectors, k: int) -> list[ScoredId]:
        """Nearest ``k`` chunks by cosine similarity (score = 1 - cosine distance)."""
        if k <= 0:
            return []
        # No count() first: it cost more than the query itself at 100k chunks, and Chroma returns
        # fewer results (or none) when asked for more than it holds.
        query: Any = [np.asarray(vector, dtype=np.float32)]
        res = self._col.query(query_embeddings=query, n_results=k, include=["distances"])
        ids = res["ids"][0] if res["ids"] else []
        dists = (res["distances"] or [[]])[0] if ids else []
        return [ScoredId(i, 1.0 - float(d), rank) for rank, (i, d) in enumerate(zip(ids, dists), start=1)]
