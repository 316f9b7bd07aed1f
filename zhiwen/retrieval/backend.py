"""The backend interface, and the choice of backend when a knowledge base opens (``ZHIWEN_MILVUS_URI``)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Literal, Protocol

from zhiwen.errors import ZhiwenError
from zhiwen.memory.catalog import CatalogStore
from zhiwen.settings import get_settings
from zhiwen.tools.bm25 import ScoredId
from zhiwen.tools.embeddings import Vectors

__all__ = ["BackendKind", "RetrievalBackend", "drop_backend", "open_backend"]

BackendKind = Literal["local", "milvus"]


class RetrievalBackend(Protocol):
    """Both retrieval legs of one knowledge base. Chunks are written before their catalog commit and
    deleted after; the knowledge base resolves every hit through its catalog, so a leg may return ids
    that are not (or no longer) committed."""

    collection: str  # its collection on a shared server (Chroma's or Milvus's)

    @property
    def kind(self) -> BackendKind: ...

    def add(self, ids: list[str], doc_ids: list[str], tokens: list[list[str]], vectors: Vectors) -> None:
        """Write chunks (their BM25 tokens and dense vectors); an id already there is replaced."""

    def delete(self, ids: list[str]) -> None: ...

    def all_ids(self) -> set[str]: ...

    def count(self) -> int: ...

    def dense(self, vector: Vectors, k: int) -> list[ScoredId]:
        """Nearest ``k`` chunks by cosine similarity (the score)."""

    def bm25(self, tokens: list[str], k: int) -> list[ScoredId]:
        """Best ``k`` chunks with a positive BM25 score for the query tokens."""

    def committed(self) -> None:
        """Called after an ingest committed its chunks to the catalog."""

    def close(self) -> None: ...


def configured_kind() -> BackendKind:
    return "milvus" if get_settings().milvus_uri else "local"


def _describe(kind: str) -> str:
    return "Milvus (ZHIWEN_MILVUS_URI)" if kind == "milvus" else "the embedded stores (bm25s and Chroma)"


def open_backend(
    path: Path, catalog: CatalogStore, name: str, embedding_model: str, fresh: bool
) -> RetrievalBackend:
    """The backend of the knowledge base in ``path``: chosen when it was made, then kept.

    A base made before backends existed is local. Opening a base with the other backend configured is a
    ``ZhiwenError``: its chunks are not there, and searching an empty index would answer nothing."""
    wanted = configured_kind()
    stored = catalog.setdefault_meta("retrieval_backend", wanted if fresh else "local")
    if stored != wanted:
        raise ZhiwenError(
            f"knowledge base {name!r} keeps its chunks in {_describe(stored)}, but {_describe(wanted)} is "
            f"configured; {'unset' if wanted == 'milvus' else 'set'} ZHIWEN_MILVUS_URI to open it, or "
            "ingest its documents into a new knowledge base"
        )  # fmt: skip
    if stored == "milvus":
        from zhiwen.retrieval.milvus import MilvusBackend

        collection = catalog.setdefault_meta("milvus_collection", milvus_collection_name(path.name))
        return MilvusBackend(collection, embedding_model)
    from zhiwen.retrieval.local import LocalBackend

    # Its own collection on a shared Chroma server (ZHIWEN_CHROMA_URL): replicas share it through the
    # catalog, but two installs with a knowledge base of one name never do (an ingest's orphan sweep in
    # one deleted the other's vectors). Knowledge bases made before this keep the name they used.
    legacy = f"zhiwen-{path.name}"[:512]
    chroma = catalog.setdefault_meta(
        "chroma_collection", f"zhiwen-{path.name}"[:499] + f"-{uuid.uuid4().hex[:12]}" if fresh else legacy
    )
    return LocalBackend(path, catalog, embedding_model, chroma)


def milvus_collection_name(folder: str) -> str:
    """``zhiwen_<folder>_<id>``: Milvus names allow letters, digits and ``_`` (255 at most)."""
    return f"zhiwen_{re.sub(r'[^A-Za-z0-9_]', '_', folder)[:200]}_{uuid.uuid4().hex[:12]}"


def drop_backend(catalog: CatalogStore, path: Path) -> None:
    """Delete what a dropped knowledge base keeps outside its folder (its server collection, if any)."""
    if catalog.get_meta("retrieval_backend") == "milvus":
        collection = catalog.get_meta("milvus_collection")
        if collection:
            from zhiwen.retrieval.milvus import drop_collection

            drop_collection(collection)
        return
    from zhiwen.retrieval.chroma_server import reaching_chroma
    from zhiwen.tools.vectors import drop_server_collection

    with reaching_chroma():  # a server that is down leaves the knowledge base whole, and says so in a line
        drop_server_collection(catalog.get_meta("chroma_collection") or f"zhiwen-{path.name}"[:512])
