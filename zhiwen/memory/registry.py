"""Process-wide open knowledge bases and the embedder, shared by nodes, server, CLI and evals."""

from __future__ import annotations

import threading
from pathlib import Path

from zhiwen.memory.kb import KnowledgeBase
from zhiwen.settings import Settings, get_settings
from zhiwen.tools.embedding_cache import CachedEmbedder
from zhiwen.tools.embeddings import Embedder, make_embedder

__all__ = ["close_all", "forget_kb", "get_embedder", "open_kb"]

_lock = threading.RLock()
_embedders: dict[tuple[str, ...], Embedder] = {}
_kbs: dict[tuple[Path, str], KnowledgeBase] = {}


def get_embedder(settings: Settings | None = None) -> Embedder:
    """The process-wide embedder, with the on-disk passage cache in front of it."""
    settings = settings or get_settings()
    with _lock:
        # Keyed by what defines the embedder (not id(settings): ids are reused after garbage collection).
        key = (str(settings.cache_dir), settings.embeddings_base_url or "", settings.embeddings_model or "")
        if key not in _embedders:
            _embedders[key] = CachedEmbedder(
                make_embedder(settings), settings.cache_dir / "embeddings.sqlite"
            )
        return _embedders[key]


def open_kb(name: str, create: bool = False, settings: Settings | None = None) -> KnowledgeBase:
    """An open knowledge base, shared within the process."""
    settings = settings or get_settings()
    key = (settings.kb_root, name)
    with _lock:
        kb = _kbs.get(key)
        if kb is None:
            kb = KnowledgeBase.open(settings.kb_root, name, get_embedder(settings), create=create)
            _kbs[key] = kb
        return kb


def forget_kb(name: str, settings: Settings | None = None) -> None:
    """Close and drop a cached knowledge base (after it is deleted on disk)."""
    settings = settings or get_settings()
    with _lock:
        kb = _kbs.pop((settings.kb_root, name), None)
    if kb is not None:
        kb.close()


def close_all() -> None:
    with _lock:
        for kb in _kbs.values():
            kb.close()
        _kbs.clear()
