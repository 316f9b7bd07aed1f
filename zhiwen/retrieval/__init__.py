"""Retrieval backends: where a knowledge base keeps its two legs (BM25 and dense vectors) and searches them.

``KnowledgeBase`` picks one when it opens (``open_backend``) and fuses what its legs return; the catalog of
documents and chunks stays in the knowledge base's SQLite file whichever backend holds the legs.
"""

from zhiwen.retrieval.backend import RetrievalBackend, drop_backend, open_backend

__all__ = ["RetrievalBackend", "drop_backend", "open_backend"]
