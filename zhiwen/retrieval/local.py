"""The embedded backend (the default): BM25 with bm25s in the knowledge base's folder, vectors in Chroma.

The BM25 index is static: it records the catalog generation it was built from and is rebuilt from the
catalog's stored tokens when stale. Vectors live in the folder's Chroma, or in a Chroma server
(``ZHIWEN_CHROMA_URL``); a server that does not answer is a ``StoreUnavailable`` (``reaching_chroma``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from pathlib import Path
from typing import Literal

import numpy as np

from zhiwen.memory.catalog import CatalogStore
from zhiwen.retrieval.chroma_server import reaching_chroma
from zhiwen.tools.bm25 import BM25Index, ScoredId
from zhiwen.tools.embeddings import Vectors
from zhiwen.tools.vectors import VectorStore

__all__ = ["LocalBackend"]


class LocalBackend:
    kind: Literal["local"] = "local"

    def __init__(
        self, path: Path, catalog: CatalogStore, embedding_model: str, chroma_collection: str
    ) -> None:
        self.path = path
        self.catalog = catalog
        self.collection = chroma_collection
        with reaching_chroma():
            self.vectors = VectorStore(path / "chroma", embedding_model, chroma_collection)
        self._index: BM25Index | None = None
        # Re-entrant: index() rebuilds under it, and an ingest's rebuild() must not race a search's.
        self._lock = threading.RLock()

    def add(self, ids: list[str], doc_ids: list[str], tokens: list[list[str]], vectors: Vectors) -> None:
        # The tokens are in the catalog already (the BM25 index is rebuilt from there): only vectors here.
        with reaching_chroma():
            self.vectors.upsert(ids, np.asarray(vectors), doc_ids)

    def delete(self, ids: list[str]) -> None:
        with reaching_chroma():
            self.vectors.delete(ids)

    def all_ids(self) -> set[str]:
        with reaching_chroma():
            return self.vectors.all_ids()

    def count(self) -> int:
        with reaching_chroma():
            return self.vectors.count()

    def dense(self, vector: Vectors, k: int) -> list[ScoredId]:
        with reaching_chroma():
            return self.vectors.search(vector, k)

    def bm25(self, tokens: list[str], k: int) -> list[ScoredId]:
        return self.index().search(tokens, k)

    def committed(self) -> None:
        self.rebuild()

    def close(self) -> None:
        self.vectors.close()

    def index(self) -> BM25Index:
        """The BM25 index for the current catalog generation (loaded, or rebuilt if stale)."""
        generation = self.catalog.generation
        with self._lock:
            if self._index is not None and self._index.generation == generation:
                return self._index
            loaded = BM25Index.load(self.path / "bm25")
            if loaded is None or loaded.generation != generation:
                loaded = self.rebuild(generation)
            self._index = loaded
            return loaded

    def rebuild(self, generation: int | None = None) -> BM25Index:
        with self._lock:
            gen = self.catalog.generation if generation is None else generation
            ids, toks = self.catalog.all_tokens()
            index = BM25Index.build(ids, toks, generation=gen)
            # Per-process scratch folders: another process (CLI ingest next to a server) may rebuild too.
            tmp = self.path / f"bm25.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            index.save(tmp)
            final = self.path / "bm25"
            old = self.path / f"bm25.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                with contextlib.suppress(FileNotFoundError):
                    final.rename(old)
            try:
                tmp.rename(final)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)  # another process installed its index first
            shutil.rmtree(old, ignore_errors=True)
            self._index = index
            return index
