"""A disk cache of passage vectors keyed by (embedding model, text hash).

Embedding on a CPU is the slow part of ingestion (about 2 passages/s per core), so re-ingesting a
corpus, re-running an evaluation suite or a benchmark reuses vectors instead of recomputing them.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import numpy as np

from zhiwen.tools.embeddings import Embedder, Vectors

__all__ = ["CachedEmbedder"]


def _key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()


class CachedEmbedder:
    """Wraps an embedder; passages already embedded by the same model come from SQLite."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vec (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def lookup(self, texts: list[str]) -> dict[int, Vectors]:
        """Cached vectors of ``texts`` by position (missing positions are absent)."""
        keys = [_key(self.name, t) for t in texts]
        found: dict[str, bytes] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                q = f"SELECT k, v FROM vec WHERE k IN ({','.join('?' * len(part))})"
                found.update(self._db.execute(q, part).fetchall())
        return {i: np.frombuffer(found[k], dtype=np.float32) for i, k in enumerate(keys) if k in found}

    def store(self, texts: list[str], vectors: Vectors) -> None:
        rows = [
            (_key(self.name, t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)
        ]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO vec (k, v) VALUES (?, ?)", rows)

    def embed_passages(self, texts: list[str]) -> Vectors:
        cached = self.lookup(texts)
        missing = [i for i in range(len(texts)) if i not in cached]
        self.hits += len(cached)
        self.misses += len(missing)
        if missing:
            fresh = self.inner.embed_passages([texts[i] for i in missing])
            self.store([texts[i] for i in missing], fresh)
            cached.update(zip(missing, fresh))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([cached[i] for i in range(len(texts))]).astype(np.float32)

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)
